"""The alerting files checked by the real tools, without a stack: Debian's promtool checks
the rendered Prometheus config and every rule file, amtool the Alertmanager config; a
broken rule or route fails the same check (negative controls). Both Loki configs name the
rules folder, the ruler's interval and remote-write URL from the environment, with the
compose defaults; the rules folder holds the single tenant's files. That Loki's ruler loads
and evaluates every rule is tests/real/test_alerts.py."""
from __future__ import annotations

import subprocess

import pytest
import yaml

from stackctl import render, tools
from stackctl.settings import Settings
from tests.support.config_text import expand_env
from tests.support.tools import REPO_ROOT, require_tool

LOKI_CONFIGS = [REPO_ROOT / "observability/loki/loki.yaml", REPO_ROOT / "observability/loki/loki-scalable.yaml"]


@pytest.fixture
def rendered(tmp_path):
    s = Settings.from_env({"RUN_DIR": str(tmp_path)})
    render.write_alerting(s)
    return tmp_path


def _run(tool: str, *args: str) -> subprocess.CompletedProcess:
    require_tool(tool)
    return subprocess.run([str(tools.path(tool)), *args], capture_output=True, text=True)


def test_promtool_accepts_the_config_and_every_rule_file(rendered):
    result = _run("promtool", "check", "config", str(rendered / "prometheus" / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    files = sorted((rendered / "prometheus" / "rules").glob("*.yaml"))
    assert [f.name for f in files] == ["pipeline.yaml", "slo.yaml"]
    assert "SUCCESS: 2 rule files found" in result.stdout


def test_promtool_refuses_a_broken_rule(rendered):
    rules = rendered / "prometheus" / "rules" / "slo.yaml"
    rules.write_text(rules.read_text().replace("sum(sum_over_time(", "sum(sum_over_time((", 1))
    result = _run("promtool", "check", "rules", str(rules))
    assert result.returncode != 0 and "parse error" in result.stdout + result.stderr


def test_amtool_accepts_the_config_and_refuses_a_broken_route(rendered):
    config = rendered / "alertmanager.yml"
    assert _run("amtool", "check-config", str(config)).returncode == 0
    config.write_text(config.read_text().replace("receiver: keep\n", "receiver: nobody\n", 1))
    result = _run("amtool", "check-config", str(config))
    assert result.returncode != 0 and 'undefined receiver "nobody"' in result.stdout + result.stderr


@pytest.mark.parametrize("path", LOKI_CONFIGS, ids=lambda p: p.name)
def test_both_loki_configs_run_the_ruler_from_the_environment(path):
    ruler = yaml.safe_load(expand_env(path.read_text(), {}))["ruler"]
    assert ruler["storage"] == {"type": "local", "local": {"directory": "/etc/loki/rules"}}
    assert ruler["evaluation_interval"] == "1m" and ruler["enable_api"] is True
    assert ruler["remote_write"]["clients"]["prometheus"]["url"] == "http://prometheus:9090/api/v1/write"
    ours = yaml.safe_load(expand_env(path.read_text(), {"LOKI_RULES_DIR": "/r", "LOKI_RULER_INTERVAL": "5s",
                                                        "LOKI_REMOTE_WRITE_URL": "http://p/w"}))["ruler"]
    assert ours["storage"]["local"]["directory"] == "/r" and ours["evaluation_interval"] == "5s"
    assert ours["remote_write"]["clients"]["prometheus"]["url"] == "http://p/w"


def test_the_rules_folder_is_the_single_tenants():
    """auth_enabled false: Loki files every line under the tenant `fake`, and its local rule
    storage reads <directory>/<tenant>/*.yaml."""
    folder = REPO_ROOT / "observability/loki/rules"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == ["fake/pcbuilder.yaml"]
    assert all(yaml.safe_load(p.read_text())["auth_enabled"] is False
               for p in LOKI_CONFIGS)
