"""Models of channels_app: the database channel layer's and the database
stream store's."""

from .layers.database.models import ChannelMessage, GroupMembership
from .streams.models import StreamEntry, StreamState

__all__ = ["ChannelMessage", "GroupMembership", "StreamEntry", "StreamState"]
