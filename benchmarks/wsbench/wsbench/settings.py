"""Settings: only what serving WebSockets through runserver needs."""

import json
import os

from harness import import_impl

IMPL = os.environ.get("BENCH_IMPL", "ours")

SECRET_KEY = "benchmark-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
# Daphne's runserver comes from the "daphne" app; ours from channels_app.
INSTALLED_APPS = ["daphne", "channels"] if IMPL == "channels" else ["channels_app"]
ASGI_APPLICATION = "wsbench.asgi.application"
ROOT_URLCONF = "wsbench.urls"
DATABASES = json.loads(os.environ.get("BENCH_DATABASES") or "{}") or {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("BENCH_SQLITE", "bench.sqlite3"),
    }
}

_layer = import_impl(
    os.environ.get("BENCH_LAYER", "channels_app.layers.InMemoryChannelLayer"), IMPL
)
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": f"{_layer.__module__}.{_layer.__qualname__}",
        "CONFIG": json.loads(os.environ.get("BENCH_CONFIG", "{}")),
    }
}
# A layer that needs an app of its own (e.g. for its tables) names it here.
INSTALLED_APPS += [a for a in os.environ.get("BENCH_EXTRA_APPS", "").split(",") if a]

# Both servers log every connection to these loggers; not what is measured.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {
        "django.server": {"level": "ERROR"},
        "django.channels.server": {"level": "ERROR"},
    },
}
