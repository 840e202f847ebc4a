"""Builds channel layers from the ``CHANNEL_LAYERS`` setting, once per alias."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from .. import DEFAULT_CHANNEL_LAYER, metrics
from ..exceptions import InvalidChannelLayerError
from ..types import ChannelLayer
from .foreign import adapt_layer


class ChannelLayerManager:
    """Lazily creates and caches one layer instance per configured alias."""

    def __init__(self) -> None:
        self.backends: dict[str, ChannelLayer] = {}
        setting_changed.connect(self._reset_backends)

    def _reset_backends(self, setting: str, **kwargs: Any) -> None:
        if setting == "CHANNEL_LAYERS":
            self.backends = {}

    @property
    def configs(self) -> dict[str, dict[str, Any]]:
        return getattr(settings, "CHANNEL_LAYERS", {}) or {}

    def make_backend(self, name: str) -> ChannelLayer:
        """Build the layer for alias ``name`` from its ``CONFIG``."""
        return self._build(name, "CONFIG")

    def make_test_backend(self, name: str) -> ChannelLayer:
        """Build the layer for alias ``name`` from ``TEST_CONFIG`` (else ``CONFIG``).

        Lets a test suite point the same alias at, say, a separate Redis
        database without touching the production settings.
        """
        entry = self._entry(name)
        return self._build(name, "TEST_CONFIG" if "TEST_CONFIG" in entry else "CONFIG")

    def _entry(self, name: str) -> dict[str, Any]:
        try:
            entry = self.configs[name]
        except KeyError:
            configured = ", ".join(map(repr, self.configs)) or "none"
            raise InvalidChannelLayerError(
                f"No channel layer is configured under the alias {name!r} "
                f"(CHANNEL_LAYERS has: {configured})"
            )
        if not isinstance(entry, dict):
            raise InvalidChannelLayerError(
                f"CHANNEL_LAYERS[{name!r}] must be a dict with BACKEND and CONFIG, "
                f"not {type(entry).__name__}"
            )
        return entry

    def _make_backend(self, name: str, config: dict[str, Any]) -> ChannelLayer:
        """Build alias ``name``'s BACKEND with ``config`` (Channels' hook: the
        dict itself, for subclasses and callers written against Channels)."""
        return self._build(name, "the given config", config)

    def _build(self, name: str, config_key: str, config: Any = None) -> ChannelLayer:
        """Build alias ``name``'s BACKEND from ``config``, or its ``config_key``."""
        entry = self._entry(name)
        where = f"CHANNEL_LAYERS[{name!r}]"
        if "ROUTING" in entry:
            raise InvalidChannelLayerError(
                f"{where} has a ROUTING key, which belongs to the Channels 1.x "
                f"configuration; point ASGI_APPLICATION at your router instead"
            )
        backend_path = entry.get("BACKEND")
        if not backend_path or not isinstance(backend_path, str):
            raise InvalidChannelLayerError(
                f"{where} has no BACKEND; set it to the dotted path of a layer "
                f"class, such as 'channels_app.layers.InMemoryChannelLayer'"
            )
        try:
            backend_class = import_string(backend_path)
        except ImportError as exc:
            raise InvalidChannelLayerError(
                f"{where} BACKEND {backend_path!r} cannot be imported: {exc}"
            )
        if config is None:
            config = entry.get(config_key) or {}
        if not isinstance(config, dict):
            raise InvalidChannelLayerError(
                f"{where} {config_key} must be a dict of keyword arguments for "
                f"{backend_path}, not {type(config).__name__}"
            )
        try:
            layer = backend_class(**config)
        except (TypeError, ValueError) as exc:
            raise InvalidChannelLayerError(
                f"{where} {config_key} does not fit {backend_path}: {exc}"
            )
        return adapt_layer(layer)

    def __getitem__(self, key: str) -> ChannelLayer:
        if key not in self.backends:
            # Counted here, the one place served layers pass: probes and
            # make_backend() callers get uncounted instances.
            self.backends[key] = metrics.instrument_layer(self.make_backend(key))
        return self.backends[key]

    def __contains__(self, key: str) -> bool:
        return key in self.configs

    def set(self, key: str, layer: Any) -> ChannelLayer | None:
        """Install ``layer`` under ``key`` (handy in tests); return the old one."""
        old = self.backends.get(key)
        self.backends[key] = metrics.instrument_layer(adapt_layer(layer))
        return old


channel_layers = ChannelLayerManager()


def get_channel_layer(alias: str = DEFAULT_CHANNEL_LAYER) -> ChannelLayer | None:
    """The layer configured under ``alias``, or ``None`` when there is none."""
    if alias not in channel_layers:
        return None
    return channel_layers[alias]


async def close_layer(layer: Any) -> None:
    """Release a layer's connections, whichever name its layer class gives that.

    Our layers have ``close()``; channels_redis's layers have ``close_pools()``.
    """
    for name in ("close", "close_pools"):
        close = getattr(layer, name, None)
        if close is not None:
            await close()
            return
