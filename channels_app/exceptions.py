"""Exceptions raised by channels_app and understood by its consumers and layers."""


class RequestAborted(Exception):
    """The client went away before the request body was fully read."""


class RequestTimeout(RequestAborted):
    """The client was too slow sending the request body."""


class InvalidChannelLayerError(ValueError):
    """A channel layer is misconfigured or lacks a feature the caller needs."""


class AcceptConnection(Exception):
    """Raise from ``connect()`` to accept the connection."""


class DenyConnection(Exception):
    """Raise from ``connect()`` to refuse the connection."""


class ChannelFull(Exception):
    """The destination channel already holds as many messages as it may."""


class MessageTooLarge(Exception):
    """The message is bigger than the channel layer can carry."""


class StopConsumer(Exception):
    """Raise from a handler to end the consumer instance cleanly."""
