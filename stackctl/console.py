"""How every ``./stack`` command speaks: ``stack: <message>`` lines, and the one error type
that ends a command with exit code 1."""
from __future__ import annotations

import sys


class StackError(Exception):
    """Printed as ``stack: <message>`` with exit code 1."""


def say(message: str) -> None:
    print(f"stack: {message}", flush=True)


def warn(message: str) -> None:
    print(f"stack: {message}", file=sys.stderr, flush=True)
