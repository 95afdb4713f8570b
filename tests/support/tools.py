"""Where the tools the tests run are: stackctl.tools, as ./stack test installed them."""
from __future__ import annotations

import pytest

from stackctl import tools

REPO_ROOT = tools.ROOT


def require_tool(name: str) -> str:
    """Where ./stack test installed ``name`` (stackctl.tools), or a test *failure*
    (never a skip) naming the fix. The caller's PATH plays no part."""
    problem = tools.missing(name)
    if problem:
        pytest.fail(problem, pytrace=False)
    return str(tools.docker_compose() if name == "docker-compose" else tools.path(name))
