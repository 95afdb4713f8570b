"""Shared helpers for the static validators (no Docker engine needed).

Imported as tests.validators.validator_helpers (pyproject puts the repo root
on sys.path), not via conftest.py, so another directory's conftest can't shadow it.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def require_tool(name: str, hint: str) -> str:
    """Path of an executable, or a test *failure* (never a skip) naming the fix."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not on PATH. {hint}", pytrace=False)
    return path


def clean_env(**extra: str) -> dict[str, str]:
    """A minimal environment: no stray compose/stack variables from the caller."""
    env = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR"}}
    env.update(extra)
    return env
