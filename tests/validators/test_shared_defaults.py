"""The uWSGI concurrency defaults are the same wherever they are written down.

uwsgi.ini holds them (used when the variable is unset); ./stack's settings table,
docker-compose.yml, .env.example and the Helm chart's values repeat them so that each
launcher shows and passes the same numbers. A change in one place only fails here.
"""
from __future__ import annotations

import re

import yaml

from stackctl.settings import BY_NAME
from tests.support.tools import REPO_ROOT


def uwsgi_ini_default(option: str) -> str:
    text = (REPO_ROOT / "service" / "uwsgi.ini").read_text()
    found = re.search(rf"if-not-env = UWSGI_{option.upper()}\n{option} = (\d+)\n", text)
    assert found, f"uwsgi.ini has no default for {option}"
    return found.group(1)


def test_processes_and_threads_defaults_agree_everywhere():
    compose = (REPO_ROOT / "docker-compose.yml").read_text()
    env_example = (REPO_ROOT / ".env.example").read_text()
    chart = yaml.safe_load((REPO_ROOT / "deploy/helm/pc-builder/values.yaml").read_text())
    for option in ("processes", "threads"):
        name = f"UWSGI_{option.upper()}"
        want = uwsgi_ini_default(option)
        assert BY_NAME[name].default == want, name
        assert f"{name}: ${{{name}:-{want}}}" in compose, name
        assert re.search(rf"^{name}={want}$", env_example, re.M), name
        assert str(chart["app"]["uwsgi"][option]) == want, name
