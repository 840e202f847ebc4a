"""Fixtures for the whole suite.

Shared fixtures live in conftest files, not in modules that tests import
(an imported fixture looks unused to linters and shadows by accident):

* here, the session and auth fixtures (their helpers are in
  :mod:`tests.auth_support`);
* ``tests/layers/conftest.py``, the channel layer fixtures;
* ``tests/demo/conftest.py``, the demo's.

It also adds ``--fast`` (``make test-fast``): only the tests that start no
process, see :mod:`tests.support.fast`.
"""

from __future__ import annotations

import os

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from tests.auth_support import ENGINES, use_session_engine
from tests.support.fast import SpawnGuard, starts_processes


def pytest_addoption(parser):
    parser.addoption(
        "--fast",
        action="store_true",
        help="only the tests that start no process (servers, workers, a "
        "browser, forks): make test-fast",
    )


#: Environment variables that configure the projects whose servers the tests
#: start (the demo's ``DEMO_*``, the e2e and auth-site settings').  Inherited
#: from a shell where someone ran the demo (``export DEMO_DATABASE=postgres``,
#: as the README shows), they would point every server at the one demo
#: database, shared with any other run; the tests set what they need.
PROJECT_VARIABLES = ("DEMO_", "E2E_", "AUTHSITE_")


def pytest_configure(config):
    for name in [name for name in os.environ if name.startswith(PROJECT_VARIABLES)]:
        del os.environ[name]
    if config.getoption("fast"):
        config.stash[SPAWN_GUARD] = SpawnGuard()


def pytest_collection_modifyitems(config, items):
    selected, deselected = [], []
    for item in items:
        if starts_processes(item):
            item.add_marker(pytest.mark.spawns)
        if config.getoption("fast") and item.get_closest_marker("spawns"):
            deselected.append(item)
        else:
            selected.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


SPAWN_GUARD = pytest.StashKey[SpawnGuard]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    return (yield from _guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    return (yield from _guarded(item))


def _guarded(item):
    guard = item.config.stash.get(SPAWN_GUARD, None)
    if guard is None:
        return (yield)
    guard.armed = True
    try:
        return (yield)
    finally:
        guard.armed = False


@pytest.fixture(params=list(ENGINES))
async def session_engine(request, settings, tmp_path):
    use_session_engine(settings, request.param, tmp_path)
    yield request.param
    # Communicators keep the connections database_sync_to_async opens (closing
    # would break test transactions); PostgreSQL cannot drop a test database
    # while they are open.
    await sync_to_async(connections.close_all)()


@pytest.fixture
def alice(session_engine, django_user_model):
    return django_user_model.objects.create_user("alice", password="alice-pw")


@pytest.fixture
def site(session_engine, settings):
    """The in-process auth site (Django views + AccountConsumer)."""
    from tests.authsite import settings as site_settings
    from tests.authsite.routing import build_application

    settings.MIDDLEWARE = site_settings.MIDDLEWARE
    settings.ROOT_URLCONF = "tests.authsite.urls"
    return build_application()
