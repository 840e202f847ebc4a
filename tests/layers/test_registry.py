"""CHANNEL_LAYERS: building, caching, and errors that say what is wrong where."""

import pytest

from channels_app.exceptions import InvalidChannelLayerError
from channels_app.layers import (
    ChannelLayerManager,
    InMemoryChannelLayer,
    channel_layers,
    get_channel_layer,
)

INMEMORY = "channels_app.layers.InMemoryChannelLayer"


def test_no_setting_means_no_layer(settings):
    settings.CHANNEL_LAYERS = {}
    assert get_channel_layer() is None
    assert "default" not in channel_layers


def test_layers_are_built_from_config_once_per_alias(settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": INMEMORY, "CONFIG": {"capacity": 7}},
        "other": {"BACKEND": INMEMORY},
    }
    layer = get_channel_layer()
    assert isinstance(layer, InMemoryChannelLayer)
    assert layer.capacity == 7
    assert get_channel_layer() is layer
    assert get_channel_layer("other") is not layer
    assert get_channel_layer("missing") is None


def test_changing_the_setting_rebuilds_the_layers(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": INMEMORY}}
    first = get_channel_layer()
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": INMEMORY, "CONFIG": {}}}
    assert get_channel_layer() is not first


def test_test_config_is_used_by_make_test_backend_falling_back_to_config(settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": INMEMORY,
            "CONFIG": {"capacity": 10},
            "TEST_CONFIG": {"capacity": 2},
        },
        "plain": {"BACKEND": INMEMORY, "CONFIG": {"capacity": 10}},
    }
    assert channel_layers.make_test_backend("default").capacity == 2
    assert channel_layers.make_backend("default").capacity == 10
    assert channel_layers.make_test_backend("plain").capacity == 10


def test_set_installs_a_layer_and_returns_the_old_one(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": INMEMORY}}
    original = get_channel_layer()
    replacement = InMemoryChannelLayer()
    assert channel_layers.set("default", replacement) is original
    assert get_channel_layer() is replacement


@pytest.mark.parametrize(
    ("entry", "explains"),
    [
        ({}, "CHANNEL_LAYERS['broken'] has no BACKEND"),
        ("redis", "CHANNEL_LAYERS['broken'] must be a dict"),
        (
            {"BACKEND": INMEMORY, "ROUTING": "app.routing"},
            "CHANNEL_LAYERS['broken'] has a ROUTING key",
        ),
        (
            {"BACKEND": "no.such.module.Layer"},
            "CHANNEL_LAYERS['broken'] BACKEND 'no.such.module.Layer' cannot be "
            "imported",
        ),
        (
            {"BACKEND": INMEMORY, "CONFIG": {"hosts": ["x"]}},
            "CHANNEL_LAYERS['broken'] CONFIG does not fit "
            "channels_app.layers.InMemoryChannelLayer: ",
        ),
        (
            {"BACKEND": INMEMORY, "CONFIG": {"capacity": -1}},
            "CHANNEL_LAYERS['broken'] CONFIG does not fit "
            "channels_app.layers.InMemoryChannelLayer: InMemoryChannelLayer "
            "capacity must be a positive integer",
        ),
        (
            {"BACKEND": INMEMORY, "CONFIG": [("capacity", 1)]},
            "CHANNEL_LAYERS['broken'] CONFIG must be a dict",
        ),
    ],
)
def test_bad_configuration_names_the_alias_and_the_problem(settings, entry, explains):
    settings.CHANNEL_LAYERS = {"broken": entry}
    with pytest.raises(InvalidChannelLayerError) as caught:
        get_channel_layer("broken")
    assert explains in str(caught.value)


def test_an_unknown_alias_lists_the_configured_ones(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": INMEMORY}}
    with pytest.raises(InvalidChannelLayerError, match="'nope'.*has: 'default'"):
        channel_layers.make_backend("nope")


def test_a_separate_manager_reads_the_same_setting(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": INMEMORY}}
    manager = ChannelLayerManager()
    assert isinstance(manager["default"], InMemoryChannelLayer)
    assert manager["default"] is not get_channel_layer()
