"""Settings: only what serving WebSockets through runserver needs."""

import json
import os

from harness import PACKAGE

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

# A path, not the class: importing a layer may need the app registry.
_layer = os.environ.get("BENCH_LAYER", "channels_app.layers.InMemoryChannelLayer")
if _layer.startswith("channels_app."):
    _layer = PACKAGE[IMPL] + _layer.removeprefix("channels_app")
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": _layer,
        "CONFIG": json.loads(os.environ.get("BENCH_CONFIG", "{}")),
    }
}

# Both servers log every connection to these loggers; not what is measured.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {
        "django.server": {"level": "ERROR"},
        "django.channels.server": {"level": "ERROR"},
    },
}
