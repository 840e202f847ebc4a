"""System checks: the root ASGI application, the channel layers and ``runserver``.

Registered when the app is ready.  Reaching a layer over the network is a
deployment check (``manage.py check --deploy``) so that ordinary commands do
not wait on Redis or PostgreSQL; ``runserver`` and ``runworker`` run it
themselves before they start, because they cannot work without the layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import get_commands, load_command_class

from .exceptions import InvalidChannelLayerError
from .layers import channel_layers
from .layers.registry import close_layer
from .routing import load_application

TAG = "channels"

#: Seconds a layer gets to carry one message to itself.
REACH_TIMEOUT = 5.0


@checks.register(TAG)
def check_asgi_application(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """ASGI_APPLICATION is set and names something importable.

    The module is imported the way runserver imports it, so the check shows
    the same real error (file, line, "Did you mean") rather than Django's
    rewording of any AttributeError as a missing attribute.
    """
    path = getattr(settings, "ASGI_APPLICATION", None)
    if not path:
        return [
            checks.Error(
                "ASGI_APPLICATION is not set, so runserver and ASGI servers have "
                "no application to run.",
                hint="Point it at your root router, e.g. "
                "ASGI_APPLICATION = 'myproject.asgi.application' (a project that "
                "only uses channel layers from WSGI code can silence "
                "channels_app.E001 in SILENCED_SYSTEM_CHECKS).",
                id="channels_app.E001",
            )
        ]
    try:
        load_application(path)
    except ImproperlyConfigured as exc:
        if exc.__cause__ is None:
            hint = (
                "Use the dotted path 'package.module.attribute' of your root "
                "application."
            )
        else:
            hint = (
                "Fix the error shown (it is where Python raised it); the module "
                "must import cleanly and define the attribute."
            )
        return [checks.Error(str(exc), hint=hint, id="channels_app.E002")]
    return []


@checks.register(TAG)
def check_channel_layers(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Every CHANNEL_LAYERS entry builds: known backend, accepted config keys."""
    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    if not isinstance(layers, dict):
        return [
            checks.Error(
                f"CHANNEL_LAYERS must be a dict of alias -> layer settings, not "
                f"{type(layers).__name__}.",
                hint="CHANNEL_LAYERS = {'default': {'BACKEND': "
                "'channels_app.layers.InMemoryChannelLayer'}}",
                id="channels_app.E003",
            )
        ]
    errors: list[checks.CheckMessage] = []
    for alias, entry in layers.items():
        builders = [channel_layers.make_backend]
        if isinstance(entry, dict) and "TEST_CONFIG" in entry:
            builders.append(channel_layers.make_test_backend)
        for build in builders:
            try:
                build(alias)
            except InvalidChannelLayerError as exc:
                errors.append(_layer_error(alias, exc))
                break
    return errors


def _layer_error(alias: str, exc: InvalidChannelLayerError) -> checks.Error:
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ImportError):
        return checks.Error(
            str(exc),
            hint="Check the BACKEND path for typos, and install the package that "
            "provides it (e.g. pip install channels-redis).",
            id="channels_app.E004",
        )
    if isinstance(cause, (TypeError, ValueError)):
        return checks.Error(
            str(exc),
            hint="Remove or rename the CONFIG keys the backend does not accept; "
            "its documentation lists the ones it takes.",
            id="channels_app.E005",
        )
    return checks.Error(
        str(exc),
        hint=f"CHANNEL_LAYERS[{alias!r}] needs a BACKEND (dotted path of a layer "
        f"class) and optionally a CONFIG dict of its arguments.",
        id="channels_app.E003",
    )


@checks.register(TAG, deploy=True)
def check_channel_layers_reachable(
    app_configs: Sequence[AppConfig] | None = None,
    aliases: list[str] | None = None,
    **kwargs: Any,
) -> list[checks.CheckMessage]:
    """Each layer carries a message to itself within ``REACH_TIMEOUT`` seconds."""
    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    if not isinstance(layers, dict):
        return []
    errors: list[checks.CheckMessage] = []
    for alias in aliases if aliases is not None else list(layers):
        problem = layer_unreachable_reason(alias)
        if problem:
            errors.append(
                checks.Error(
                    f"Channel layer {alias!r} cannot be reached: {problem}",
                    hint="Start the service the layer uses (Redis, PostgreSQL) or "
                    f"fix CHANNEL_LAYERS[{alias!r}]['CONFIG'] so it points at it.",
                    id="channels_app.E006",
                )
            )
    return errors


def layer_unreachable_reason(alias: str, timeout: float = REACH_TIMEOUT) -> str:
    """Why the layer ``alias`` cannot carry a message, or ``""`` if it can.

    A fresh layer instance sends a message to a new channel of its own and
    reads it back, on a private event loop in a private thread, so this is
    safe to call from anywhere (including code running inside an event loop).
    """
    outcome: list[str] = []

    def probe() -> None:
        try:
            asyncio.run(_round_trip(alias, timeout))
        except InvalidChannelLayerError as exc:
            outcome.append(str(exc))
        except (asyncio.TimeoutError, TimeoutError):
            outcome.append(f"no answer within {timeout:g}s")
        except Exception as exc:
            outcome.append(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=probe, name="channels_app-layer-check")
    thread.start()
    thread.join()
    return outcome[0] if outcome else ""


async def _round_trip(alias: str, timeout: float) -> None:
    layer = channel_layers.make_backend(alias)

    async def carry() -> None:
        channel = await layer.new_channel("check.")
        await layer.send(channel, {"type": "channels_app.check"})
        await layer.receive(channel)

    try:
        await asyncio.wait_for(carry(), timeout)
    finally:
        # A failure to close must not hide why the layer was unreachable.
        with contextlib.suppress(Exception):
            await close_layer(layer)


#: The old id of the runserver check, from when it was a warning.  A project
#: that silenced it chose another app's runserver on purpose, so silencing it
#: still silences ``RUNSERVER_SHADOWED``.
RUNSERVER_SHADOWED_OLD = "channels_app.W001"
RUNSERVER_SHADOWED = "channels_app.E007"


@checks.register(TAG)
def check_runserver_not_shadowed(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """``manage.py runserver`` is ours, not another app's listed earlier.

    An error, not a warning: the other command starts and looks as if it
    works, and what is missing (WebSockets, or the workers and lifespan
    hooks) shows up later as failures that do not point here.  A project's
    own runserver that subclasses ours is ours.
    """
    owner = get_commands().get("runserver")
    if owner in (None, "channels_app", "django.core"):
        return []
    if RUNSERVER_SHADOWED_OLD in getattr(settings, "SILENCED_SYSTEM_CHECKS", []):
        return []
    kind = _runserver_kind(owner)
    if kind == "ours":
        return []
    listed = (
        f"'manage.py runserver' comes from {owner!r}, which is listed before "
        f"'channels_app' in INSTALLED_APPS."
    )
    if kind == "wsgi":
        message = (
            f"{listed} It starts Django's WSGI development server: every "
            f"WebSocket connection gets a 404, and channels_app's in-process "
            f"workers and lifespan hooks (on_startup/on_shutdown) never run."
        )
        hint = f"List 'channels_app' before {owner!r} in INSTALLED_APPS"
        if owner == "django.contrib.staticfiles":
            hint += "; channels_app's runserver serves static files too."
        else:
            hint += "."
    elif kind == "daphne":
        message = (
            f"{listed} It is Daphne's runserver: it serves ASGI_APPLICATION, "
            f"WebSockets included, but without channels_app's in-process "
            f"workers (the ChannelNameRouter's consumers get nothing unless "
            f"'manage.py runworker' runs too) and without lifespan, so the "
            f"on_startup and on_shutdown hooks never run."
        )
        if owner == "daphne":
            hint = (
                "Remove 'daphne' or list 'channels_app' before it in "
                "INSTALLED_APPS (Channels 4 projects list 'daphne' first; "
                "channels_app's runserver runs Daphne itself, with the workers "
                "and lifespan)."
            )
        else:
            hint = f"List 'channels_app' before {owner!r} in INSTALLED_APPS."
    else:
        message = (
            f"{listed} channels_app's runserver (WebSockets, in-process "
            f"workers, lifespan hooks) is not used."
        )
        hint = f"List 'channels_app' before {owner!r} in INSTALLED_APPS."
    return [
        checks.Error(
            message,
            hint=hint
            + f" If the other runserver is wanted, silence {RUNSERVER_SHADOWED}.",
            id=RUNSERVER_SHADOWED,
        )
    ]


def _runserver_kind(owner: str) -> str:
    """What the winning runserver is: ``ours`` (a subclass of channels_app's),
    ``daphne``, ``wsgi`` (Django's, e.g. staticfiles' or whitenoise's) or
    ``other``.

    Judged by the command's classes, by module name, so that checking does
    not import channels_app's own command (and with it Daphne and Twisted).
    """
    try:
        command = load_command_class(owner, "runserver")
    except Exception:
        return "other"
    modules = [cls.__module__ for cls in type(command).__mro__]
    if "channels_app.management.commands.runserver" in modules:
        return "ours"
    if any(module.split(".")[0] == "daphne" for module in modules):
        return "daphne"
    if "django.core.management.commands.runserver" in modules:
        return "wsgi"
    return "other"
