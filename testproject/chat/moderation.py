"""The moderation pass the background worker runs on every new message."""

from __future__ import annotations

import re

from django.conf import settings

DEFAULT_BLOCKED_WORDS = ("darn", "heck", "frak")


def blocked_words() -> list[str]:
    return list(getattr(settings, "CHAT_BLOCKED_WORDS", DEFAULT_BLOCKED_WORDS))


def mask(text: str) -> str:
    """``text`` with each blocked word reduced to its first letter and stars."""
    words = blocked_words()
    if not words:
        return text
    pattern = re.compile(
        r"\b(" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE
    )
    return pattern.sub(lambda m: m.group()[0] + "*" * (len(m.group()) - 1), text)
