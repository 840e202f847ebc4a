"""Models of channels_app; they belong to the database channel layer."""

from .layers.database.models import ChannelMessage, GroupMembership

__all__ = ["ChannelMessage", "GroupMembership"]
