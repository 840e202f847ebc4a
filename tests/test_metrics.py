"""Metrics recorded in-process: the layer seam, the views, and metrics left off.

The end-to-end counterparts (a real Daphne, ``runworker --metrics-port``)
are in tests/e2e/test_metrics.py.
"""

import json
import subprocess
import sys
import textwrap

import pytest
from django.test import override_settings
from prometheus_client import REGISTRY, generate_latest

from channels_app import metrics
from channels_app.exceptions import ChannelFull
from channels_app.generic.websocket import AsyncWebsocketConsumer
from channels_app.layers import InMemoryChannelLayer, channel_layers
from channels_app.testing import WebsocketCommunicator
from tests.servers import ROOT, free_port
from tests.services import REDIS_URL, require
from tests.support.scrape import parse, value
from tests.support.waiting import eventually


class CountedLayer(InMemoryChannelLayer):
    """A class of its own, so its label counts only this module's traffic."""


class UncountedLayer(InMemoryChannelLayer):
    """Built only through make_backend(), which metrics leave alone."""


def sample(name, **labels):
    return value(parse(generate_latest(REGISTRY).decode()), name, **labels)


def layer_settings(backend, **config):
    return override_settings(
        CHANNEL_LAYERS={"default": {"BACKEND": backend, "CONFIG": config}}
    )


async def test_the_registry_counts_each_served_layer_once():
    counted = {"layer": "CountedLayer"}
    with layer_settings("tests.test_metrics.CountedLayer", capacity=1, expiry=0.2):
        layer = channel_layers["default"]
        assert channel_layers.set("default", layer) is layer  # not wrapped twice
        await layer.send("metrics.a", {"type": "one"})
        with pytest.raises(ChannelFull):
            await layer.send("metrics.a", {"type": "two"})
        assert await layer.receive("metrics.a") == {"type": "one"}
        await layer.group_add("room", "metrics.a")
        await layer.group_add("room", "metrics.b")
        await layer.send("metrics.a", {"type": "fills it"})
        assert await layer.group_send("room", {"type": "to both"}) == 1
        await layer.send("metrics.c", {"type": "never read"})
        assert sample("channels_app_layer_sends_total", **counted) == 3
        assert sample("channels_app_layer_receives_total", **counted) == 1
        assert sample("channels_app_layer_channel_full_total", **counted) == 1
        assert sample("channels_app_layer_group_sends_total", **counted) == 1
        full = "channels_app_layer_group_send_full_members_total"
        assert sample(full, **counted) == 1
        # Three messages are left unread; the layer's idle sweep expires them.
        expired = "channels_app_layer_expired_messages_total"
        await eventually(lambda: sample(expired, **counted) == 3, timeout=10)


async def test_layers_built_outside_the_registry_cache_are_not_counted():
    with layer_settings("tests.test_metrics.UncountedLayer"):
        layer = channel_layers.make_backend("default")
        await layer.send("metrics.a", {"type": "one"})
        assert "send" not in vars(layer)
    assert sample("channels_app_layer_sends_total", layer="UncountedLayer") is None


async def test_channels_redis_channel_full_is_counted():
    require("redis")
    labels = {"layer": "RedisChannelLayer"}
    before = sample("channels_app_layer_channel_full_total", **labels) or 0
    config = {"hosts": [REDIS_URL], "capacity": 1, "prefix": f"m{free_port()}"}
    with layer_settings("channels_redis.core.RedisChannelLayer", **config):
        layer = channel_layers["default"]
        try:
            await layer.send("metrics.redis", {"type": "one"})
            with pytest.raises(ChannelFull):
                await layer.send("metrics.redis", {"type": "two"})
            await layer.flush()
        finally:
            await layer.close_pools()
    assert sample("channels_app_layer_channel_full_total", **labels) == before + 1


@pytest.mark.urls("tests.metrics_urls")
def test_metrics_view_serves_the_text_format(client):
    metrics.record_slow_client_close("websocket")
    response = client.get("/metrics/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = parse(response.content.decode())
    assert value(samples, "channels_app_slow_client_closes_total", protocol="websocket")


@pytest.mark.urls("tests.metrics_urls")
def test_health_is_ok_with_a_working_layer(client):
    with layer_settings("channels_app.layers.InMemoryChannelLayer"):
        response = client.get("/health/")
    assert response.status_code == 200
    assert response.json() == {"layer": "ok", "layers": {"default": "ok"}}


@pytest.mark.urls("tests.metrics_urls")
def test_health_is_ok_with_a_working_redis(client):
    require("redis")
    config = {"hosts": [REDIS_URL], "prefix": f"h{free_port()}"}
    with layer_settings("channels_redis.core.RedisChannelLayer", **config):
        response = client.get("/health/")
    assert response.status_code == 200, response.content
    assert response.json()["layer"] == "ok"


@pytest.mark.urls("tests.metrics_urls")
def test_health_is_503_with_a_dead_layer(client):
    dead = {"hosts": [f"redis://127.0.0.1:{free_port()}/0"]}
    layers = {
        "default": {"BACKEND": "channels_app.layers.InMemoryChannelLayer"},
        "redis": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": dead},
    }
    with override_settings(CHANNEL_LAYERS=layers):
        response = client.get("/health/")
    assert response.status_code == 503
    body = response.json()
    assert body["layers"]["default"] == "ok"
    assert body["layers"]["redis"] != "ok"
    assert body["layer"].startswith("redis: ")
    assert "Connect" in body["layer"] or "refused" in body["layer"], body


WITHOUT_PROMETHEUS = """
import sys
sys.modules["prometheus_client"] = None  # makes "import prometheus_client" fail
import django
django.setup()
import asyncio, json
from django.test import Client, override_settings
from channels_app import metrics
from channels_app.layers import channel_layers
from channels_app.testing import WebsocketCommunicator
from testproject.consumers import EchoConsumer

async def echo():
    communicator = WebsocketCommunicator(EchoConsumer.as_asgi(), "/ws/echo/")
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data="hi")
    assert await communicator.receive_from() == "hi"
    await communicator.disconnect()

asyncio.run(echo())
receive, send = object(), object()
dispatch = object()
layers = {"default": {"BACKEND": "channels_app.layers.InMemoryChannelLayer"}}
with override_settings(CHANNEL_LAYERS=layers, ROOT_URLCONF="tests.metrics_urls"):
    layer = channel_layers["default"]
    response = Client().get("/metrics/")
    health = Client().get("/health/")
try:
    metrics.start_metrics_server(0)
    refused = ""
except metrics.MetricsUnavailable as exc:
    refused = str(exc)
print(json.dumps({
    "enabled": metrics.ENABLED,
    "loaded": "prometheus_client" in sys.modules
        and sys.modules["prometheus_client"] is not None,
    "recorders": sorted({f.__module__ for f in (
        metrics.open_connection, metrics.timed_dispatch, metrics.instrument_layer,
        metrics.worker_message_started, metrics.record_slow_client_close,
        metrics.watch_queue_depth, metrics.start_metrics_server)}),
    "same_callables": metrics.open_connection(None, {"type": "websocket"},
        receive, send)[:2] == (receive, send)
        and metrics.timed_dispatch(None, dispatch) is dispatch,
    "layer_wrapped": "send" in vars(layer),
    "status": response.status_code,
    "body": response.content.decode(),
    "health": health.status_code,
    "refused": refused,
}))
"""


def test_without_prometheus_client_nothing_is_recorded_and_views_explain():
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(WITHOUT_PROMETHEUS)],
        cwd=ROOT,
        env={
            **__import__("os").environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "PYTHONPATH": f"{ROOT}:{ROOT / 'testproject'}",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["enabled"] is False
    assert report["loaded"] is False
    assert report["recorders"] == ["channels_app.metrics.disabled"]
    assert report["same_callables"] is True
    assert report["layer_wrapped"] is False
    assert report["status"] == 501
    assert "pip install 'channels_app[metrics]'" in report["body"]
    assert report["health"] == 200
    assert report["refused"] == metrics.MISSING


class BrokenLayer(InMemoryChannelLayer):
    async def new_channel(self, prefix="specific."):
        raise ConnectionError("layer down")


class NeverServed(AsyncWebsocketConsumer):
    pass


class Served(AsyncWebsocketConsumer):
    pass


async def test_a_consumer_that_fails_to_start_is_not_left_open():
    with layer_settings("tests.test_metrics.BrokenLayer"):
        communicator = WebsocketCommunicator(NeverServed.as_asgi(), "/")
        with pytest.raises(ConnectionError):
            await communicator.connect()
    gauge = "channels_app_connections_open"
    assert sample(gauge, protocol="websocket", route="NeverServed") == 0


async def test_a_served_connection_is_open_until_its_consumer_ends():
    gauge = "channels_app_connections_open"
    labels = {"protocol": "websocket", "route": "Served"}
    with layer_settings("channels_app.layers.InMemoryChannelLayer"):
        communicator = WebsocketCommunicator(Served.as_asgi(), "/")
        assert (await communicator.connect())[0]
        assert sample(gauge, **labels) == 1
        await communicator.disconnect()
    assert sample(gauge, **labels) == 0


async def test_the_route_label_is_the_matched_patterns():
    from django.urls import path

    from channels_app.routing import URLRouter

    seen = []

    async def app(scope, receive, send):
        seen.append(scope["route"])

    inner = URLRouter([path("<str:room>/", app)])
    router = URLRouter([path("chat/", inner), path("echo/", app)])
    await router({"type": "websocket", "path": "/chat/lobby/"}, None, None)
    await router({"type": "websocket", "path": "/echo/"}, None, None)
    assert seen == ["chat/<str:room>/", "echo/"]


def test_label_values_have_a_ceiling():
    from channels_app.metrics.labels import OTHER, BoundedLabel

    label = BoundedLabel(limit=3)
    assert [label(f"r{n}") for n in range(5)] == ["r0", "r1", "r2", OTHER, OTHER]
    assert label("r1") == "r1"  # admitted values stay admitted
