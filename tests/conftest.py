"""Fixtures for the whole suite.

Shared fixtures live in conftest files, not in modules that tests import
(an imported fixture looks unused to linters and shadows by accident):

* here, the session and auth fixtures (their helpers are in
  :mod:`tests.auth_support`);
* ``tests/layers/conftest.py``, the channel layer fixtures;
* ``tests/demo/conftest.py``, the demo's.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from tests.auth_support import ENGINES, use_session_engine


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
