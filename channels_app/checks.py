"""System checks: the root ASGI application, the channel layers and ``runserver``.

Registered when the app is ready.  Reaching a layer over the network is a
deployment check (``manage.py check --deploy``) so that ordinary commands do
not wait on Redis or PostgreSQL; ``runserver`` and ``runworker`` run it
themselves before they start, because they cannot work without the layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.management import get_commands
from django.utils.module_loading import import_string

from .exceptions import InvalidChannelLayerError
from .layers import channel_layers
from .worker import close_layer

TAG = "channels"

#: Seconds a layer gets to carry one message to itself.
REACH_TIMEOUT = 5.0


@checks.register(TAG)
def check_asgi_application(
    app_configs=None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """ASGI_APPLICATION is set and names something importable."""
    path = getattr(settings, "ASGI_APPLICATION", None)
    if not path:
        return [
            checks.Error(
                "ASGI_APPLICATION is not set, so runserver and ASGI servers have "
                "no application to run.",
                hint="Point it at your root router, e.g. "
                "ASGI_APPLICATION = 'myproject.asgi.application' (a project that "
                "only uses channel layers from WSGI code can silence "
                "channels_app.E001 in SILENCED_SYSTEM_CHECKS).",
                id="channels_app.E001",
            )
        ]
    try:
        import_string(path)
    except Exception as exc:
        return [
            checks.Error(
                f"ASGI_APPLICATION {path!r} cannot be imported: "
                f"{type(exc).__name__}: {exc}",
                hint="Use the dotted path 'package.module.attribute' of your "
                "root application and make sure that module imports cleanly.",
                id="channels_app.E002",
            )
        ]
    return []


@checks.register(TAG)
def check_channel_layers(app_configs=None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every CHANNEL_LAYERS entry builds: known backend, accepted config keys."""
    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    if not isinstance(layers, dict):
        return [
            checks.Error(
                f"CHANNEL_LAYERS must be a dict of alias -> layer settings, not "
                f"{type(layers).__name__}.",
                hint="CHANNEL_LAYERS = {'default': {'BACKEND': "
                "'channels_app.layers.InMemoryChannelLayer'}}",
                id="channels_app.E003",
            )
        ]
    errors = []
    for alias, entry in layers.items():
        builders = [channel_layers.make_backend]
        if isinstance(entry, dict) and "TEST_CONFIG" in entry:
            builders.append(channel_layers.make_test_backend)
        for build in builders:
            try:
                build(alias)
            except InvalidChannelLayerError as exc:
                errors.append(_layer_error(alias, exc))
                break
    return errors


def _layer_error(alias: str, exc: InvalidChannelLayerError) -> checks.Error:
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ImportError):
        return checks.Error(
            str(exc),
            hint="Check the BACKEND path for typos, and install the package that "
            "provides it (e.g. pip install channels-redis).",
            id="channels_app.E004",
        )
    if isinstance(cause, (TypeError, ValueError)):
        return checks.Error(
            str(exc),
            hint="Remove or rename the CONFIG keys the backend does not accept; "
            "its documentation lists the ones it takes.",
            id="channels_app.E005",
        )
    return checks.Error(
        str(exc),
        hint=f"CHANNEL_LAYERS[{alias!r}] needs a BACKEND (dotted path of a layer "
        f"class) and optionally a CONFIG dict of its arguments.",
        id="channels_app.E003",
    )


@checks.register(TAG, deploy=True)
def check_channel_layers_reachable(
    app_configs=None, aliases: list[str] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Each layer carries a message to itself within ``REACH_TIMEOUT`` seconds."""
    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    if not isinstance(layers, dict):
        return []
    errors = []
    for alias in aliases if aliases is not None else list(layers):
        problem = layer_unreachable_reason(alias)
        if problem:
            errors.append(
                checks.Error(
                    f"Channel layer {alias!r} cannot be reached: {problem}",
                    hint="Start the service the layer uses (Redis, PostgreSQL) or "
                    f"fix CHANNEL_LAYERS[{alias!r}]['CONFIG'] so it points at it.",
                    id="channels_app.E006",
                )
            )
    return errors


def layer_unreachable_reason(alias: str, timeout: float = REACH_TIMEOUT) -> str:
    """Why the layer ``alias`` cannot carry a message, or ``""`` if it can.

    A fresh layer instance sends a message to a new channel of its own and
    reads it back, on a private event loop in a private thread, so this is
    safe to call from anywhere (including code running inside an event loop).
    """
    outcome: list[str] = []

    def probe() -> None:
        try:
            asyncio.run(_round_trip(alias, timeout))
        except InvalidChannelLayerError as exc:
            outcome.append(str(exc))
        except (asyncio.TimeoutError, TimeoutError):
            outcome.append(f"no answer within {timeout:g}s")
        except Exception as exc:
            outcome.append(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=probe, name="channels_app-layer-check")
    thread.start()
    thread.join()
    return outcome[0] if outcome else ""


async def _round_trip(alias: str, timeout: float) -> None:
    layer = channel_layers.make_backend(alias)

    async def carry() -> None:
        channel = await layer.new_channel("check.")
        await layer.send(channel, {"type": "channels_app.check"})
        await layer.receive(channel)

    try:
        await asyncio.wait_for(carry(), timeout)
    finally:
        # A failure to close must not hide why the layer was unreachable.
        with contextlib.suppress(Exception):
            await close_layer(layer)


@checks.register(TAG)
def check_runserver_not_shadowed(
    app_configs=None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """``manage.py runserver`` is ours, not another app's listed earlier."""
    owner = get_commands().get("runserver")
    if owner in (None, "channels_app", "django.core"):
        return []
    return [
        checks.Warning(
            f"'manage.py runserver' comes from {owner!r}, which is listed before "
            f"'channels_app' in INSTALLED_APPS, so channels_app's runserver "
            f"(WebSockets, in-process workers, lifespan) is not used.",
            hint=f"Move 'channels_app' above {owner!r} in INSTALLED_APPS; "
            f"channels_app's runserver also serves static files.",
            id="channels_app.W001",
        )
    ]
