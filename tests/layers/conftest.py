"""Fixtures building each layer of the contract suite through the settings."""

from __future__ import annotations

import pytest
from django.test import override_settings

from channels_app.layers import channel_layers
from channels_app.layers.database import DatabaseChannelLayer
from tests.layers.database_fixtures import ALIASES, BACKENDS
from tests.layers.helpers import Listener
from tests.layers.implementations import LAYER_PARAMS, LayerUnderTest
from tests.services import require


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    if request.param == "postgres":
        require("postgres")
    return request.param


@pytest.fixture
async def make_db_layer(backend, transactional_db):
    """``make_db_layer(**config)``: a database layer on the backend the test is
    parameterised with, closed afterwards; the tables come from the app's
    migrations, run by pytest-django into the test databases."""
    layers: list[DatabaseChannelLayer] = []

    def make(**config) -> DatabaseChannelLayer:
        config.setdefault("database", ALIASES[backend])
        layer = DatabaseChannelLayer(**config)
        layers.append(layer)
        return layer

    yield make
    for layer in layers:
        await layer.close()


@pytest.fixture(params=LAYER_PARAMS)
def layer_under_test(request) -> LayerUnderTest:
    for service in request.param.services:
        require(service)
    return request.param


@pytest.fixture
async def make_layer(layer_under_test):
    """``await make_layer(**config)``: a layer built from ``CHANNEL_LAYERS``.

    Each layer is flushed and closed after the test, even when the test or
    another layer's cleanup failed.
    """
    built = []

    async def make(**config):
        entry = {
            "BACKEND": layer_under_test.backend,
            "CONFIG": {**layer_under_test.base_config(), **config},
        }
        with override_settings(CHANNEL_LAYERS={"contract": entry}):
            layer = channel_layers.make_backend("contract")
        built.append(layer)
        return layer

    yield make

    errors = []
    for layer in built:
        for step in ("flush", "close"):
            try:
                method = getattr(layer, step)
            except Exception:  # this layer has no such step
                continue
            try:
                await method()
            except Exception as exc:
                errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
async def listen():
    """``listen(layer, channel)``: a :class:`Listener`, stopped after the test."""
    listeners = []

    def start(layer, channel: str) -> Listener:
        listener = Listener(layer, channel)
        listeners.append(listener)
        return listener

    yield start
    for listener in listeners:
        await listener.stop()
