"""Settings for serving the auth site with Daphne (see tests/e2e)."""

import os

SECRET_KEY = "authsite-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
INSTALLED_APPS = [
    "channels_app",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "tests.authsite.urls"
ASGI_APPLICATION = "tests.authsite.asgi.application"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DEMO_SQLITE_PATH", "authsite.sqlite3"),
    }
}
SESSION_ENGINE = os.environ.get(
    "AUTHSITE_SESSION_ENGINE", "django.contrib.sessions.backends.db"
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Everything to the server log, so tests can tell a clean log from a traceback.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "INFO"},
}
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher"
]  # Fast logins in tests.

# A channel layer only when a test asks for one (tests/e2e/test_session_end.py):
# "inmemory", or "redis" with AUTHSITE_REDIS_URL and AUTHSITE_REDIS_PREFIX.
_layer = os.environ.get("AUTHSITE_CHANNEL_LAYER")
if _layer == "inmemory":
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_app.layers.InMemoryChannelLayer"}
    }
elif _layer == "redis":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [os.environ["AUTHSITE_REDIS_URL"]],
                "prefix": os.environ["AUTHSITE_REDIS_PREFIX"],
            },
        }
    }
