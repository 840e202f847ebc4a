"""Fixtures shared by the layer tests."""

from .database_fixtures import backend, make_layer  # noqa: F401 - fixtures
