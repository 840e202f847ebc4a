"""Channel layers: how consumers, workers and processes talk to each other.

Besides the layer classes and the registry, this module offers the names
code reaches through ``channels.layers`` in Django Channels (the exceptions
and the default alias), so changing the import prefix is enough.
"""

from .. import DEFAULT_CHANNEL_LAYER
from ..exceptions import ChannelFull, InvalidChannelLayerError
from .base import BaseChannelLayer
from .inmemory import InMemoryChannelLayer
from .registry import ChannelLayerManager, channel_layers, get_channel_layer

__all__ = [
    "DEFAULT_CHANNEL_LAYER",
    "BaseChannelLayer",
    "ChannelFull",
    "ChannelLayerManager",
    "InMemoryChannelLayer",
    "InvalidChannelLayerError",
    "channel_layers",
    "get_channel_layer",
]
