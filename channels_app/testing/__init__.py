"""In-process test helpers: drive an ASGI application without a server."""

from .application import ApplicationCommunicator
from .auth import communicator_for, session_cookie_header
from .http import HttpCommunicator
from .websocket import WebsocketCommunicator

__all__ = [
    "ApplicationCommunicator",
    "HttpCommunicator",
    "WebsocketCommunicator",
    "communicator_for",
    "session_cookie_header",
]
