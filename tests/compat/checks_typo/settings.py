"""Settings for running ``manage.py`` on a copy of this package.

``CHECKS_TYPO_INSTALLED_APPS`` (comma-separated) replaces the app list, for
the checks about which app's ``runserver`` wins;
``CHECKS_TYPO_ASGI_APPLICATION`` replaces the (broken) application;
``CHECKS_TYPO_AUTORELOAD_LOG`` turns on the autoreloader's debug log, which
says when it starts watching a file.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "checks-typo-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = os.environ.get(
    "CHECKS_TYPO_INSTALLED_APPS",
    "channels_app,django.contrib.auth,django.contrib.contenttypes,"
    "django.contrib.sessions",
).split(",")

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "db.sqlite3",
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ASGI_APPLICATION = os.environ.get(
    "CHECKS_TYPO_ASGI_APPLICATION", "checks_typo.asgi.application"
)
CHANNEL_LAYERS = {"default": {"BACKEND": "channels_app.layers.InMemoryChannelLayer"}}
STATIC_URL = "/static/"
USE_TZ = True

if os.environ.get("CHECKS_TYPO_AUTORELOAD_LOG"):
    LOGGING = {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"console": {"class": "logging.StreamHandler"}},
        "loggers": {
            "django.utils.autoreload": {"handlers": ["console"], "level": "DEBUG"}
        },
    }
