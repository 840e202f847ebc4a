"""A small site for the auth, session and origin tests.

It runs in-process (``routing.build_application``) and under a real Daphne
(``asgi.application`` with ``settings``).  ``AccountConsumer`` shows the
WebSocket login flow with the cookie sync of ``channels_app.session_sync``.
"""
