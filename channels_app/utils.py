"""Small helpers shared by consumers, routers and workers."""

from __future__ import annotations

import types
from typing import Any

# Channels has it here; ours lives with the rest of the dispatch machinery.
from .multiplex import await_many_dispatch  # noqa: F401


def name_that_thing(thing: Any) -> str:
    """A dotted name for ``thing``, for log lines and error messages.

    Functions, classes and methods give ``module.qualified.name`` (so a
    method says which class it is on); a module gives its own name; any
    other object gives the name of its class.  Mocks give ``"<mock>"``:
    they answer every attribute, so looking for a name on one would invent
    it.  Channels formats names the same way, but from ``__name__``, so its
    answer leaves out enclosing classes and functions.
    """
    if hasattr(type(thing), "mock_calls"):
        return "<mock>"
    if isinstance(thing, types.ModuleType):
        return thing.__name__
    if isinstance(thing, types.MethodType):
        thing = thing.__func__
    qualname = getattr(thing, "__qualname__", None)
    if not isinstance(qualname, str):
        return name_that_thing(type(thing))
    module = getattr(thing, "__module__", None)
    if not isinstance(module, str):
        # Methods of built-in types (str.join, [].append) name no module
        # themselves; the type they belong to does.
        owner = getattr(thing, "__objclass__", None)
        if owner is None and getattr(thing, "__self__", None) is not None:
            owner = type(thing.__self__)
        module = getattr(owner, "__module__", None)
    return f"{module}.{qualname}" if module else qualname
