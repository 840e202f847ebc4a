"""Settings for serving the streams site with Daphne (tests/e2e/test_streams.py).

``STREAMSITE_BACKEND``: ``memory`` (in-memory layer and store, one process),
``database`` (the database layer and store on the SQLite file) or ``redis``
(channels_redis and the Redis store at ``STREAMSITE_REDIS_URL``, every key
under ``STREAMSITE_REDIS_PREFIX``).
"""

import os

SECRET_KEY = "streamsite-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
INSTALLED_APPS = ["channels_app", "django.contrib.contenttypes"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "tests.streamsite.asgi"
ASGI_APPLICATION = "tests.streamsite.asgi.application"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DEMO_SQLITE_PATH", "streamsite.sqlite3"),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "INFO"},
}

_backend = os.environ.get("STREAMSITE_BACKEND", "memory")
if _backend == "redis":
    _url = os.environ["STREAMSITE_REDIS_URL"]
    _prefix = os.environ["STREAMSITE_REDIS_PREFIX"]
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [_url], "prefix": _prefix + "layer"},
        }
    }
    CHANNELS_APP_STREAMS = {
        "STORE": {
            "BACKEND": "channels_app.streams.RedisStreamStore",
            "OPTIONS": {"url": _url, "prefix": _prefix},
        }
    }
elif _backend == "database":
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_app.layers.database.DatabaseChannelLayer"}
    }
    CHANNELS_APP_STREAMS = {
        "STORE": {"BACKEND": "channels_app.streams.DatabaseStreamStore"}
    }
else:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_app.layers.InMemoryChannelLayer"}
    }
