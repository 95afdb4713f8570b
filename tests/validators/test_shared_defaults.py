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


#: The alert settings compose passes to Prometheus's templates and the chart's rule templates.
ALERT_SETTINGS = ("ALERT_EVAL_INTERVAL", "ALERT_FOR", "ALERT_BURN_FOR", "SLO_AVAILABILITY", "SLO_LATENCY",
                  "SLO_LATENCY_THRESHOLD", "GRAFANA_URL")


def test_alert_defaults_agree_everywhere():
    """./stack's settings table is where they are declared; compose, .env.example and the
    chart's rule settings repeat them. (ALERT_RUNBOOK_URL differs on purpose: ./stack's
    default is this checkout's docs/alerts.md, a path a container or a cluster has not.)"""
    compose = (REPO_ROOT / "docker-compose.yml").read_text()
    env_example = (REPO_ROOT / ".env.example").read_text()
    chart = yaml.safe_load((REPO_ROOT / "deploy/helm/pc-builder/values.yaml").read_text())
    rule_settings = chart["prometheusRules"]["settings"]
    for name in ALERT_SETTINGS:
        want = BY_NAME[name].default
        assert f"{name}: ${{{name}:-{want}}}" in compose, name
        assert re.search(rf"^{name}={re.escape(want)}$", env_example, re.M), name
        if name != "ALERT_EVAL_INTERVAL":  # Prometheus's own interval, not in the rules
            assert str(rule_settings[name]) == want, name
    assert "ALERT_RUNBOOK_URL" in rule_settings and "ALERT_WEBHOOK_URL: ${ALERT_WEBHOOK_URL:-}" in compose
