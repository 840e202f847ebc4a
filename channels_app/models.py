"""Models of channels_app: the database channel layer's, the database stream
store's and the database presence store's."""

from .layers.database.models import ChannelMessage, GroupMembership
from .presence.models import PresentConnection, PresentUser
from .streams.models import StreamEntry, StreamState

__all__ = [
    "ChannelMessage",
    "GroupMembership",
    "PresentConnection",
    "PresentUser",
    "StreamEntry",
    "StreamState",
]
