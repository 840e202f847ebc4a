"""Channel layers: how consumers, workers and processes talk to each other."""

from .base import BaseChannelLayer
from .inmemory import InMemoryChannelLayer
from .registry import ChannelLayerManager, channel_layers, get_channel_layer

__all__ = [
    "BaseChannelLayer",
    "ChannelLayerManager",
    "InMemoryChannelLayer",
    "channel_layers",
    "get_channel_layer",
]
