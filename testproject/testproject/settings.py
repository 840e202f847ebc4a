"""Settings for the demo project.

With no environment variables set it runs on SQLite and the in-memory
channel layer in one process.  The variables below switch it to the setups
a real deployment uses; the README's demo section lists them.

``DEMO_DATABASE``        ``sqlite`` (default) or ``postgres`` (libpq's ``PG*``
                         variables; database ``PGDATABASE``, default
                         ``channels_app_demo``)
``DEMO_CHANNEL_LAYER``   ``memory`` (default), ``database`` (the database
                         layer, on ``DEMO_DATABASE``) or ``redis``
                         (channels_redis at ``REDIS_URL``)
``DEMO_SQLITE_PATH``     where the SQLite file lives
``DEMO_PRESENCE_LEASE``  seconds a vanished server's users stay listed (30)

Streams (the rooms' message history for reconnecting browsers) and presence
live where the layer does, so that several server processes share them: in
memory with the in-memory layer, in the database with the database layer,
in Redis with Redis.
"""

import os
from pathlib import Path

import django
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = os.environ.get(
    "DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]"
).split(",")

INSTALLED_APPS = [
    "channels_app",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "testproject.urls"
ASGI_APPLICATION = "testproject.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ],
        },
    },
]

DEMO_DATABASE = os.environ.get("DEMO_DATABASE", "sqlite")
DEMO_CHANNEL_LAYER = os.environ.get("DEMO_CHANNEL_LAYER", "memory")

if DEMO_DATABASE == "sqlite":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("DEMO_SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
        }
    }
    if django.VERSION >= (5, 1):
        # Several processes (two servers, a worker) write at once.
        # A transaction that reads before it writes cannot wait for SQLite's
        # write lock, it fails at once with "database is locked"; starting
        # every transaction with the lock makes it wait (up to the timeout).
        DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE"}
elif DEMO_DATABASE == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
            "USER": os.environ.get("PGUSER", "postgres"),
            "PASSWORD": os.environ.get("PGPASSWORD", ""),
            "NAME": os.environ.get("PGDATABASE", "channels_app_demo"),
        }
    }
else:
    raise ImproperlyConfigured(
        f"DEMO_DATABASE={DEMO_DATABASE!r}: use 'sqlite' or 'postgres'"
    )

if DEMO_CHANNEL_LAYER == "memory":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_app.layers.InMemoryChannelLayer",
            # Presence sends every member one frame per arrival, so a crowd
            # arriving at once queues up to one event per other member on
            # each connection's channel: room for a 1,000-person burst
            # (the default, 100, drops joins in a room of 200).
            "CONFIG": {"capacity": 1000},
        },
    }
elif DEMO_CHANNEL_LAYER == "database":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_app.layers.database.DatabaseChannelLayer",
        },
    }
elif DEMO_CHANNEL_LAYER == "redis":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")]
            },
        },
    }
else:
    raise ImproperlyConfigured(
        f"DEMO_CHANNEL_LAYER={DEMO_CHANNEL_LAYER!r}: use 'memory', 'database' "
        f"or 'redis'"
    )

_presence_lease = float(os.environ.get("DEMO_PRESENCE_LEASE", "30"))
if DEMO_CHANNEL_LAYER == "memory":
    CHANNELS_APP_PRESENCE = {"LEASE": _presence_lease}
elif DEMO_CHANNEL_LAYER == "database":
    CHANNELS_APP_STREAMS = {
        "STORE": {"BACKEND": "channels_app.streams.DatabaseStreamStore"}
    }
    CHANNELS_APP_PRESENCE = {
        "STORE": {"BACKEND": "channels_app.presence.DatabasePresenceStore"},
        "LEASE": _presence_lease,
    }
else:
    _redis_store = {
        "url": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "prefix": os.environ.get("DEMO_REDIS_PREFIX", "demo:"),
    }
    CHANNELS_APP_STREAMS = {
        "STORE": {
            "BACKEND": "channels_app.streams.RedisStreamStore",
            "OPTIONS": {**_redis_store, "prefix": _redis_store["prefix"] + "streams:"},
        }
    }
    CHANNELS_APP_PRESENCE = {
        "STORE": {
            "BACKEND": "channels_app.presence.RedisPresenceStore",
            "OPTIONS": {**_redis_store, "prefix": _redis_store["prefix"] + "presence:"},
        },
        "LEASE": _presence_lease,
    }

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat:rooms"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "static"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
