"""Builds channel layers from the ``CHANNEL_LAYERS`` setting, once per alias."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from .. import DEFAULT_CHANNEL_LAYER
from ..exceptions import InvalidChannelLayerError


class ChannelLayerManager:
    """Lazily creates and caches one layer instance per configured alias."""

    def __init__(self) -> None:
        self.backends: dict[str, Any] = {}
        setting_changed.connect(self._reset_backends)

    def _reset_backends(self, setting: str, **kwargs: Any) -> None:
        if setting == "CHANNEL_LAYERS":
            self.backends = {}

    @property
    def configs(self) -> dict[str, dict]:
        return getattr(settings, "CHANNEL_LAYERS", {}) or {}

    def make_backend(self, name: str) -> Any:
        """Build the layer for alias ``name`` from its ``CONFIG``."""
        return self._make_backend(name, "CONFIG")

    def make_test_backend(self, name: str) -> Any:
        """Build the layer for alias ``name`` from its ``TEST_CONFIG``."""
        return self._make_backend(name, "TEST_CONFIG")

    def _make_backend(self, name: str, config_key: str) -> Any:
        try:
            entry = self.configs[name]
        except KeyError:
            raise InvalidChannelLayerError(
                f"No channel layer is configured under the alias {name!r}"
            )
        if "ROUTING" in entry:
            raise InvalidChannelLayerError(
                f"CHANNEL_LAYERS[{name!r}] has a ROUTING key, which belongs to the "
                f"Channels 1.x configuration; point ASGI_APPLICATION at your router "
                f"instead"
            )
        backend_path = entry.get("BACKEND")
        if not backend_path:
            raise InvalidChannelLayerError(
                f"CHANNEL_LAYERS[{name!r}] has no BACKEND; set it to the dotted "
                f"path of a layer class"
            )
        try:
            backend_class = import_string(backend_path)
        except ImportError as exc:
            raise InvalidChannelLayerError(
                f"CHANNEL_LAYERS[{name!r}] BACKEND {backend_path!r} cannot be "
                f"imported: {exc}"
            )
        config = entry.get(config_key, {}) or {}
        try:
            return backend_class(**config)
        except TypeError as exc:
            raise InvalidChannelLayerError(
                f"CHANNEL_LAYERS[{name!r}] {config_key} does not fit "
                f"{backend_path}: {exc}"
            )

    def __getitem__(self, key: str) -> Any:
        if key not in self.backends:
            self.backends[key] = self.make_backend(key)
        return self.backends[key]

    def __contains__(self, key: str) -> bool:
        return key in self.configs

    def set(self, key: str, layer: Any) -> Any:
        """Install ``layer`` under ``key`` (handy in tests); return the old one."""
        old = self.backends.get(key)
        self.backends[key] = layer
        return old


channel_layers = ChannelLayerManager()


def get_channel_layer(alias: str = DEFAULT_CHANNEL_LAYER) -> Any:
    """The layer configured under ``alias``, or ``None`` when there is none."""
    if alias not in channel_layers:
        return None
    return channel_layers[alias]
