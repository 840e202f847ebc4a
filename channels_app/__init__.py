"""Real-time Django over ASGI: consumers, routing and channel layers."""

__version__ = "0.1.0"

#: The alias of the channel layer consumers use unless told otherwise.
DEFAULT_CHANNEL_LAYER = "default"
