"""JSON parsing that refuses an object with a repeated key.

JSON allows ``{"cpu": 1, "cpu": 4}`` and Python keeps the last value; a client that sent
it meant one of them, and silently choosing for it hides the mistake.
"""
from __future__ import annotations

import json


class DuplicateKey(ValueError):
    """An object repeats a key; the message names it."""


def _no_duplicates(pairs: list[tuple]) -> dict:
    seen = set()
    for key, _value in pairs:
        if key in seen:
            shown = key if len(key) <= 40 else key[:40] + "…"
            raise DuplicateKey(f"key {shown!r} appears more than once in one object")
        seen.add(key)
    return dict(pairs)


def loads(data: bytes | str):
    """``json.loads`` raising :class:`DuplicateKey` (a ValueError) for a repeated key."""
    return json.loads(data, object_pairs_hook=_no_duplicates)
