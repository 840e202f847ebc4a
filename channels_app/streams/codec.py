"""Checking and encoding stream message content.

Stream messages end up in JSON frames to browsers and in stores shared
between processes, so their content must be a dict that JSON can carry.
Every store keeps the encoded text, so the in-memory store refuses exactly
what Redis would, and a reader can never change a message another reader
sees.
"""

from __future__ import annotations

import json
from typing import Any


def _require_str_keys(value: Any, path: str) -> None:
    # json.dumps turns int, float, bool and None keys into strings silently, so
    # the reader would get back a different dict than was published.
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"A stream message must be JSON-serialisable with str keys: "
                    f"key {key!r} at {path or 'the top level'} is not a str"
                )
            _require_str_keys(item, f"{path}[{key!r}]")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _require_str_keys(item, f"{path}[{index}]")


def encode(data: Any) -> str:
    """``data`` as compact JSON text, or a ``TypeError`` saying what is wrong."""
    if not isinstance(data, dict):
        raise TypeError(
            f"A stream message must be a dict, not {type(data).__name__}: "
            f"wrap other values, e.g. {{'value': ...}}"
        )
    _require_str_keys(data, "")
    try:
        return json.dumps(data, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"A stream message must be JSON-serialisable (str keys; str, int, "
            f"float, bool, None, lists and dicts): {exc}"
        ) from None


def decode(text: str | bytes) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(text)
    return value
