"""Test helpers: drive an ASGI application in-process, or serve it for real."""

from .application import ApplicationCommunicator
from .auth import communicator_for, session_cookie_header
from .http import HttpCommunicator
from .live import ChannelsLiveServerTestCase
from .websocket import WebsocketCommunicator

__all__ = [
    "ApplicationCommunicator",
    "ChannelsLiveServerTestCase",
    "HttpCommunicator",
    "WebsocketCommunicator",
    "communicator_for",
    "session_cookie_header",
]
