"""Protections a browser does not give WebSockets (see ``websocket``)."""
