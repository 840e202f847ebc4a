"""Every name a Channels 4.3 module offers is at the same place here.

A Channels project migrates by changing its import prefix, so whatever its
code can reach in a Channels module -- a function, a class, a method that a
subclass overrides or calls, a keyword it passes -- has to be reachable
under ``channels_app`` too.  These tests read the installed Channels (the
real one, installed alongside for channels_redis) and compare it with ours
name by name:

- module level: the names each Channels module defines or takes from another
  Channels module.  What it merely imports from Django, asgiref or the
  standard library (``settings``, ``urlparse``...) is not Channels' API and
  is left out; which names those are is read from its source.
- classes: every public attribute, plus the private ones code is known to
  reach (``_path_routing`` on routers, ``channel_receive``...).  A class in
  Channels must be a class here, since projects subclass them.
- callables: every parameter Channels names can be passed by that name
  here, nothing here is required that Channels lacks, and an ``async``
  method stays ``async`` (an override that awaits ``super()`` depends on it).

What we leave out on purpose is listed in the allow-lists below, each with
the reason; docs/migrating.rst describes them for projects.  An entry that
stops being a gap makes ``test_allow_lists_hold_only_real_gaps`` fail, so the
lists cannot go stale.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import inspect
from typing import Any

import pytest
from django.apps import apps
from django.test import override_settings

pytest.importorskip("channels")

MODULES = [
    "",
    ".apps",
    ".auth",
    ".consumer",
    ".db",
    ".exceptions",
    ".generic.http",
    ".generic.websocket",
    ".layers",
    ".middleware",
    ".routing",
    ".security.websocket",
    ".sessions",
    ".testing",
    ".testing.application",
    ".testing.http",
    ".testing.live",
    ".testing.websocket",
    ".utils",
    ".worker",
    ".management.commands.runworker",
]

#: Private names that code written for Channels is known to read or override.
REACHABLE_PRIVATE = {
    "_path_routing",
    "channel_receive",
    "_sync",
    "_clean_expired",
    "_remove_from_groups",
}

#: Names deliberately missing here, with the reason (and the way out).
MISSING_ON_PURPOSE = {
    # Our ApplicationCommunicator switches connection closing off through a
    # context variable for the whole application task; Channels patches
    # close_old_connections with this do-nothing function around each call.
    "channels.testing.application.no_op": "helper of Channels' patching; no use",
    # Our Worker is not an asgiref StatelessServer: it runs one application
    # instance per channel and a bounded number of handlers at a time
    # (--concurrency), and drains them on SIGTERM (--drain-timeout).  The
    # StatelessServer machinery has no counterpart; projects that subclassed
    # Worker to hook into it must port the hook (see docs/migrating.rst).
    "channels.worker.Worker.application_checker": "our Worker is no StatelessServer",
    "channels.worker.Worker.application_checker_interval": "no StatelessServer",
    "channels.worker.Worker.application_exception": "no StatelessServer",
    "channels.worker.Worker.application_send": "no StatelessServer",
    "channels.worker.Worker.arun": "no StatelessServer; run() or serve()",
    "channels.worker.Worker.delete_application_instance": "no StatelessServer",
    "channels.worker.Worker.delete_oldest_application_instance": "no StatelessServer",
    "channels.worker.Worker.get_or_create_application_instance": "no StatelessServer",
    "channels.worker.Worker.handle": "no StatelessServer; serve() is the loop",
    "channels.worker.Worker.listener": "no StatelessServer",
    # Channels logs the worker as "django.channels.worker"; ours logs as
    # "channels_app.worker" (LOGGING entries need the new name).
    "channels.management.commands.runworker.logger": "our logger has our name",
    # Django stopped reading this attribute (commands leave the locale alone
    # unless they ask otherwise); Channels still sets it.
    "channels.management.commands.runworker.Command.leave_locale_alone": (
        "Django no longer reads it"
    ),
}
# runworker imports Worker, so its Worker is the same class, seen again.
MISSING_ON_PURPOSE.update(
    {
        name.replace("channels.worker.", "channels.management.commands.runworker."): r
        for name, r in MISSING_ON_PURPOSE.items()
        if name.startswith("channels.worker.Worker.")
    }
)

#: Callables whose parameters differ on purpose, with the reason.
SIGNATURES_ON_PURPOSE = {
    # max_applications caps StatelessServer's instances; ours are bounded by
    # the channels served and run at most `concurrency` handlers at a time.
    "channels.worker.Worker": "max_applications has no meaning here",
    "channels.management.commands.runworker.Worker": "the same Worker, seen again",
}


def channels_module(suffix: str) -> Any:
    return importlib.import_module("channels" + suffix)


def our_module(suffix: str) -> Any:
    return importlib.import_module("channels_app" + suffix)


def api_names(module: Any) -> set[str]:
    """Public names ``module`` defines, or imports from another Channels
    module, read from its source."""
    names: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        names.add(target.id)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif isinstance(node, ast.ImportFrom):
                from_channels = (
                    node.level > 0 or (node.module or "").split(".")[0] == "channels"
                )
                if from_channels:
                    names.update(alias.asname or alias.name for alias in node.names)
            elif isinstance(node, ast.If | ast.Try):
                visit(node.body)
                visit(getattr(node, "orelse", []))

    visit(ast.parse(inspect.getsource(module)).body)
    return {
        name
        for name in names
        if not name.startswith("_") and not inspect.ismodule(getattr(module, name))
    }


def member_names(cls: type) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_") or n in REACHABLE_PRIVATE}


def defined_by_channels(cls: type, name: str) -> bool:
    """Whether Channels itself defines ``cls.name`` (not Django or asgiref)."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return klass.__module__.split(".")[0] == "channels"
    return False


def home_classes(suffix: str) -> list[tuple[str, type, Any]]:
    """``(dotted name, Channels class, our object)`` for the classes each
    module defines itself (re-exports are checked where they live)."""
    module, ours = channels_module(suffix), our_module(suffix)
    found = []
    for name in sorted(api_names(module)):
        obj = getattr(module, name)
        if inspect.isclass(obj) and obj.__module__ == module.__name__:
            found.append((f"{module.__name__}.{name}", obj, getattr(ours, name, None)))
        elif (
            inspect.isclass(obj)
            and obj.__module__.split(".")[0] == "channels"
            and module.__name__ == "channels.management.commands.runworker"
        ):
            # The command's Worker is reached as Command.worker_class there.
            found.append((f"{module.__name__}.{name}", obj, getattr(ours, name, None)))
    return found


def missing_module_names(suffix: str) -> list[str]:
    module, ours = channels_module(suffix), our_module(suffix)
    return [
        f"{module.__name__}.{name}"
        for name in sorted(api_names(module))
        if not hasattr(ours, name)
    ]


def missing_members(suffix: str) -> list[str]:
    missing = []
    for dotted, cls, ours in home_classes(suffix):
        if ours is None:
            continue  # Reported by the module-level test.
        if not inspect.isclass(ours):
            missing.append(f"{dotted} (a class in Channels, not here)")
            continue
        ours_members = set(dir(ours))
        missing += [
            f"{dotted}.{name}"
            for name in sorted(member_names(cls) - ours_members)
            if not name.startswith("__")
        ]
    return missing


def parameters(func: Any) -> list[inspect.Parameter] | None:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    params = list(signature.parameters.values())
    if params and params[0].name in ("self", "cls"):
        params = params[1:]
    return params


def signature_mismatches(dotted: str, theirs: Any, ours: Any) -> list[str]:
    """What a call written for ``theirs`` can do that fails with ``ours``."""
    their_params, our_params = parameters(theirs), parameters(ours)
    if their_params is None or our_params is None:
        return []
    problems = []
    our_by_name = {p.name: p for p in our_params}
    takes_any_keyword = any(p.kind is p.VAR_KEYWORD for p in our_params)
    takes_any_positional = any(p.kind is p.VAR_POSITIONAL for p in our_params)
    by_keyword = (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )
    for param in their_params:
        if param.kind not in by_keyword:
            continue
        mine = our_by_name.get(param.name)
        if mine is None and not takes_any_keyword:
            problems.append(f"{dotted}: no parameter {param.name!r}")
        elif mine is not None and mine.kind not in by_keyword:
            problems.append(f"{dotted}: {param.name!r} cannot be passed by name")
        elif (
            mine is not None
            and param.kind is param.POSITIONAL_OR_KEYWORD
            and mine.kind is mine.KEYWORD_ONLY
            and not takes_any_positional
        ):
            problems.append(f"{dotted}: {param.name!r} is keyword-only here")
    their_names = {p.name for p in their_params}
    their_any_keyword = any(p.kind is p.VAR_KEYWORD for p in their_params)
    for param in our_params:
        required = param.default is param.empty and param.kind in by_keyword
        if required and param.name not in their_names and not their_any_keyword:
            problems.append(f"{dotted}: requires {param.name!r}, unknown to Channels")
    if asyncio.iscoroutinefunction(theirs) and not asyncio.iscoroutinefunction(ours):
        problems.append(f"{dotted}: async in Channels, not here")
    return problems


def all_signature_mismatches(suffix: str) -> list[str]:
    module, ours = channels_module(suffix), our_module(suffix)
    problems = []
    for name in sorted(api_names(module)):
        theirs, mine = getattr(module, name), getattr(ours, name, None)
        if callable(theirs) and callable(mine):
            problems += signature_mismatches(f"{module.__name__}.{name}", theirs, mine)
    for dotted, cls, mine in home_classes(suffix):
        if not inspect.isclass(mine):
            continue
        for name in sorted(member_names(cls)):
            if not defined_by_channels(cls, name) or not hasattr(mine, name):
                continue
            theirs_attr, our_attr = getattr(cls, name), getattr(mine, name)
            if inspect.isclass(theirs_attr) or not callable(theirs_attr):
                continue
            problems += signature_mismatches(f"{dotted}.{name}", theirs_attr, our_attr)
    return problems


@pytest.mark.parametrize("suffix", MODULES, ids=lambda s: "channels" + s)
def test_module_names(suffix):
    missing = [n for n in missing_module_names(suffix) if n not in MISSING_ON_PURPOSE]
    assert missing == [], "names Channels has and we lack:\n" + "\n".join(missing)


@pytest.mark.parametrize("suffix", MODULES, ids=lambda s: "channels" + s)
def test_class_members(suffix):
    missing = [n for n in missing_members(suffix) if n not in MISSING_ON_PURPOSE]
    assert missing == [], "class members Channels has and we lack:\n" + "\n".join(
        missing
    )


@pytest.mark.parametrize("suffix", MODULES, ids=lambda s: "channels" + s)
def test_signatures(suffix):
    problems = [
        problem
        for problem in all_signature_mismatches(suffix)
        if problem.split(":")[0] not in SIGNATURES_ON_PURPOSE
    ]
    assert problems == [], "calls written for Channels that fail here:\n" + "\n".join(
        problems
    )


def test_allow_lists_hold_only_real_gaps():
    gaps = set()
    mismatched = set()
    for suffix in MODULES:
        gaps.update(missing_module_names(suffix), missing_members(suffix))
        mismatched.update(p.split(":")[0] for p in all_signature_mismatches(suffix))
    assert sorted(set(MISSING_ON_PURPOSE) - gaps) == []
    assert sorted(set(SIGNATURES_ON_PURPOSE) - mismatched) == []


async def test_communicators_have_channels_instance_attributes():
    # Tests read these off the communicator (scope, body, response_headers).
    from channels.testing import HttpCommunicator as TheirHttp
    from channels.testing import WebsocketCommunicator as TheirWebsocket

    from channels_app.testing import HttpCommunicator, WebsocketCommunicator

    async def app(scope, receive, send):
        pass

    pairs = [
        (TheirHttp(app, "GET", "/"), HttpCommunicator(app, "GET", "/")),
        (TheirWebsocket(app, "/"), WebsocketCommunicator(app, "/")),
    ]
    missing = []
    for theirs, ours in pairs:
        for name in sorted(vars(theirs)):
            if not name.startswith("_") and not hasattr(ours, name):
                missing.append(f"{type(theirs).__name__}().{name}")
        for communicator in (theirs, ours):
            await communicator.wait()
    assert missing == []


# --- attributes that instances get -------------------------------------------
#
# Channels sets many attributes in __init__ or __call__ (a consumer's
# channel_layer, channel_name, channel_receive, base_send; a layer's
# channels and groups), where dir() of the class cannot see them.

CONSTRUCTED = {
    "layers.InMemoryChannelLayer": lambda m: m.InMemoryChannelLayer(),
    "layers.ChannelLayerManager": lambda m: m.ChannelLayerManager(),
    "routing.ProtocolTypeRouter": lambda m: m.ProtocolTypeRouter({}),
    "routing.URLRouter": lambda m: m.URLRouter([]),
    "routing.ChannelNameRouter": lambda m: m.ChannelNameRouter({}),
    "middleware.BaseMiddleware": lambda m: m.BaseMiddleware(None),
    "sessions.CookieMiddleware": lambda m: m.CookieMiddleware(None),
    "sessions.SessionMiddleware": lambda m: m.SessionMiddleware(None),
    "sessions.InstanceSessionWrapper": lambda m: m.InstanceSessionWrapper(
        {"type": "http", "cookies": {}}, None
    ),
    "auth.AuthMiddleware": lambda m: m.AuthMiddleware(None),
    "security.websocket.OriginValidator": lambda m: m.OriginValidator(None, ["*"]),
}


def public_and_reachable(obj: Any) -> set[str]:
    return {n for n in dir(obj) if not n.startswith("_") or n in REACHABLE_PRIVATE}


@pytest.mark.parametrize("target", sorted(CONSTRUCTED))
def test_instances_have_channels_attributes(target):
    module = target.rpartition(".")[0]
    build = CONSTRUCTED[target]
    theirs = build(channels_module(f".{module}"))
    ours = build(our_module(f".{module}"))
    assert sorted(public_and_reachable(theirs) - set(dir(ours))) == []


CONSUMERS = [
    ("consumer", "AsyncConsumer"),
    ("consumer", "SyncConsumer"),
    ("generic.websocket", "AsyncWebsocketConsumer"),
    ("generic.websocket", "WebsocketConsumer"),
    ("generic.websocket", "AsyncJsonWebsocketConsumer"),
    ("generic.websocket", "JsonWebsocketConsumer"),
    ("generic.http", "AsyncHttpConsumer"),
]


async def running_consumer_attributes(base: type, sync: bool) -> set[str]:
    """What ``dir()`` shows on an instance of ``base`` while it handles a
    message, with a channel layer configured."""
    from asgiref.testing import ApplicationCommunicator

    seen: set[str] = set()

    def record(consumer):
        seen.update(public_and_reachable(consumer))
        return {"type": "probed"}

    if sync:

        class Probe(base):
            def probe(self, message):
                self.base_send(record(self))

    else:

        class Probe(base):
            async def probe(self, message):
                await self.base_send(record(self))

    communicator = ApplicationCommunicator(
        Probe.as_asgi(), {"type": "websocket", "path": "/", "headers": []}
    )
    await communicator.send_input({"type": "probe"})
    assert await communicator.receive_output(5) == {"type": "probed"}
    communicator.stop(exceptions=False)
    return seen


# Consumers tidy database connections around their handlers, which may touch
# a connection an earlier test left open.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("module", "name"), CONSUMERS, ids=lambda v: str(v))
async def test_running_consumers_have_channels_attributes(module, name):
    theirs = getattr(channels_module(f".{module}"), name)
    ours = getattr(our_module(f".{module}"), name)
    layers = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer"},
        "ours": {"BACKEND": "channels_app.layers.InMemoryChannelLayer"},
    }
    with override_settings(CHANNEL_LAYERS=layers):
        sync = issubclass(theirs, channels_module(".consumer").SyncConsumer)
        their_attributes = await running_consumer_attributes(theirs, sync)

        class OnOurLayer(ours):
            channel_layer_alias = "ours"

        our_attributes = await running_consumer_attributes(OnOurLayer, sync)
    assert "channel_receive" in their_attributes  # The layer was really there.
    assert sorted(their_attributes - our_attributes) == []


# --- the app config under Channels' name --------------------------------------

DJANGO_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
]


@pytest.mark.parametrize(
    "entry",
    [
        "channels_app",
        "channels_app.apps.ChannelsConfig",
        "channels_app.apps.ChannelsAppConfig",
    ],
)
def test_installed_apps_accepts_channels_config(entry):
    from channels_app.apps import ChannelsAppConfig, ChannelsConfig

    assert ChannelsConfig is ChannelsAppConfig
    with override_settings(INSTALLED_APPS=[*DJANGO_APPS, entry]):
        config = apps.get_app_config("channels_app")
        assert type(config) is ChannelsConfig
        assert config.verbose_name == "Channels"
