"""Django settings for the test suite."""

import os
import tempfile
import uuid

from tests.services import IN_CI, PG, postgres_available

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
USE_TZ = True
# A password check with Django's default hasher costs about a second of CPU
# on purpose; with a busy core a login test timed out waiting for three of
# them.  What the tests check (refused, accepted) does not depend on it.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "channels_app",
    "tests",
]

# One PostgreSQL test database per run, named in the environment so the
# servers that end-to-end tests start (child processes) use the same one, and
# two runs on one machine never drop each other's database.
_run_db = os.environ.setdefault(
    "CHANNELS_APP_PG_TEST_DB", f"test_channels_app_{uuid.uuid4().hex[:8]}"
)
# Under pytest-xdist (make test-fast) each worker is a run of its own:
# pytest-django suffixes the test database names with the worker id, and the
# variable follows so that names derived from it stay per worker too.
_worker = os.environ.get("PYTEST_XDIST_WORKER")
if _worker and not _run_db.endswith(f"_{_worker}"):
    os.environ["CHANNELS_APP_PG_TEST_DB"] = f"{_run_db}_{_worker}"

_sqlite_dir = tempfile.mkdtemp(prefix="channels_app_tests_")
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(_sqlite_dir, "default.sqlite3"),
        # A file, not :memory:, so connections can really be closed and reopened.
        "TEST": {"NAME": os.path.join(_sqlite_dir, "test_default.sqlite3")},
    }
}
if IN_CI or postgres_available():
    DATABASES["postgres"] = {
        "ENGINE": "django.db.backends.postgresql",
        **PG,
        "TEST": {"NAME": _run_db},
    }

CHANNEL_LAYERS: dict = {}
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The demo's chat app (tests/demo, tests/browser): its tables must exist in the
# test database; tests.demo.demo_settings adds the rest of its configuration.
INSTALLED_APPS += ["django.contrib.staticfiles", "chat"]
STATIC_URL = "/static/"
