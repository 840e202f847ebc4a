"""In-process test helpers: drive an ASGI application without a server."""

from .application import ApplicationCommunicator
from .http import HttpCommunicator
from .websocket import WebsocketCommunicator

__all__ = ["ApplicationCommunicator", "HttpCommunicator", "WebsocketCommunicator"]
