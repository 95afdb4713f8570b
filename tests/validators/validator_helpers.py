"""Shared helpers for the static validators (no Docker engine needed).

Imported as tests.validators.validator_helpers (pyproject puts the repo root
on sys.path), not via conftest.py, so another directory's conftest can't shadow it.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from stackctl import tools

REPO_ROOT = Path(__file__).resolve().parents[2]


def require_tool(name: str) -> str:
    """Where ./stack test installed ``name`` (stackctl.tools), or a test *failure*
    (never a skip) naming the fix. The caller's PATH plays no part."""
    problem = tools.missing(name)
    if problem:
        pytest.fail(problem, pytrace=False)
    return str(tools.docker_compose() if name == "docker-compose" else tools.path(name))


def clean_env(**extra: str) -> dict[str, str]:
    """A minimal environment: no stray compose/stack variables from the caller."""
    env = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR"}}
    env.update(extra)
    return env
