"""Run tests against the demo project's own configuration.

The test database is created from ``tests.settings`` (which installs the
chat app); these overrides add what the demo's pages and consumers need,
taken from ``testproject.settings`` itself so the tests follow the demo.
"""

from django.test import override_settings

from testproject import settings as demo

IN_MEMORY_LAYER = {"default": {"BACKEND": "channels_app.layers.InMemoryChannelLayer"}}

#: Everything a request or connection to the demo relies on, in-memory layer.
demo_settings = override_settings(
    ROOT_URLCONF=demo.ROOT_URLCONF,
    ASGI_APPLICATION=demo.ASGI_APPLICATION,
    MIDDLEWARE=demo.MIDDLEWARE,
    TEMPLATES=demo.TEMPLATES,
    STATIC_URL=demo.STATIC_URL,
    LOGIN_URL=demo.LOGIN_URL,
    LOGIN_REDIRECT_URL=demo.LOGIN_REDIRECT_URL,
    LOGOUT_REDIRECT_URL=demo.LOGOUT_REDIRECT_URL,
    CHANNEL_LAYERS=IN_MEMORY_LAYER,
    # In-memory stores, made afresh each time these settings are entered (a
    # changed setting rebuilds them): no test sees another's history.
    CHANNELS_APP_STREAMS={},
    CHANNELS_APP_PRESENCE={},
)
