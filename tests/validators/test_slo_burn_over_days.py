"""The slow-burn SLO alerts over days of traffic, on Prometheus's own rule engine
(``promtool test rules``, Debian's prometheus package): when they fire and when they resolve.

tests/real/test_alerts.py produces every condition on the real stack, but a slow burn's
windows (30 min to 3 days) hold its errors for hours. promtool evaluates the project's SLO
rules, rendered with the defaults (``for:`` 2 min, 99.9 % and 99 % objectives), over synthetic
days of the series Loki's ruler records (``pcbuilder:requests:count1m``,
``pcbuilder:page_requests_fast:count1m``). Samples and evaluations are 5 minutes apart
rather than Loki's 1, which makes days of evaluation take seconds: every ratio the rules
compare divides two sums over the same samples, so the step changes no ratio, only how
finely the times below are seen. The rules are the
rendered file; only their annotations are left out of the copy under test, since promtool
compares annotations word for word and their text is checked on the real stack.

- an episode of 5xx (1 % of requests: 10x the budget's rate) and slow pages (9 %: 9x) for 6
  hours fires both tickets through the 6h/30m pair, never a page, and each resolves within
  minutes of the episode's end, when its 30-minute window empties (the 6-hour one still
  holds the errors: the short window is what ends the alert);
- a slow leak (0.15 % and 1.5 %: 1.5x) for 3 days fires both through the 3d/6h pair and
  resolves two hours after it stops, when the 6-hour window falls under the budget's rate
  (the 3-day one still holds the errors).

A negative control checks the test can fail: without the short window the episode's alert
would still be firing 20 minutes after the episode.
"""
from __future__ import annotations

import subprocess

import pytest
import yaml

from stackctl import render, tools
from stackctl.settings import Settings
from tests.support.tools import require_tool

DAY = 1440  # minutes
STEP = 5  # minutes between samples and between evaluations (see the docstring)
SLOW_BURNS = ("AvailabilitySlowBurn", "LatencySlowBurn")
FAST_BURNS = ("AvailabilityFastBurn", "LatencyFastBurn")


def values(*runs: tuple[float, int]) -> str:
    """promtool's series notation for consecutive (value per sample, minutes) runs."""
    return " ".join(f"{v:g}x{n // STEP - 1}" for v, n in runs)


def series(threshold: str, api_5xx: list, slow_pages: list) -> list[dict]:
    """1,000 API calls and 1,000 pages a sample; ``api_5xx`` and ``slow_pages`` are
    (per sample, minutes) runs of the failed calls and the pages slower than ``threshold``."""
    minutes = sum(n for _, n in api_5xx)
    count = 'pcbuilder:requests:count1m{{env="local", layer="nginx", kind="{kind}", route="r", status_class="{cls}"}}'
    return [
        {"series": count.format(kind="api", cls="2xx"), "values": values((1000, minutes))},
        {"series": count.format(kind="api", cls="5xx"), "values": values(*api_5xx)},
        {"series": count.format(kind="page", cls="2xx"), "values": values((1000, minutes))},
        {"series": f'pcbuilder:page_requests_fast:count1m{{env="local", le="{threshold}"}}',
         "values": values(*((1000 - v, n) for v, n in slow_pages))},
    ]


def expect(minute: int, firing: dict[str, str]) -> list[dict]:
    """At ``minute``: the slow burns in ``firing`` (name -> window label) fire, none else."""
    out = []
    for name in SLOW_BURNS + FAST_BURNS:
        alerts = []
        if name in firing:
            slo = "availability" if name.startswith("Availability") else "latency"
            alerts = [{"exp_labels": {"severity": "ticket", "slo": slo, "window": firing[name]}}]
        out.append({"eval_time": f"{minute}m", "alertname": name, "exp_alerts": alerts})
    return out


def episode_test(threshold: str) -> dict:
    start, hours = 3 * DAY, 6 * 60
    end = start + hours
    both = dict.fromkeys(SLOW_BURNS, "6h")
    return {
        "name": "a 6-hour episode: the 6h/30m pair fires, the 30m window resolves it",
        "interval": f"{STEP}m",
        "input_series": series(threshold, api_5xx=[(0, start), (20, hours), (0, 120)],
                               slow_pages=[(0, start), (90, hours), (0, 120)]),
        "alert_rule_test": [*expect(start + 120, {}),     # 6h windows still under 6x
                            *expect(end - STEP, both),
                            *expect(end + 5, both),        # 30m windows still over 6x
                            *expect(end + 20, {})],        # 30m under 6x; the 6h still over
    }


def leak_test(threshold: str) -> dict:
    leak = 3 * DAY
    both = dict.fromkeys(SLOW_BURNS, "3d")
    return {
        "name": "a 3-day leak: the 3d/6h pair fires, the 6h window resolves it",
        "interval": f"{STEP}m",
        "input_series": series(threshold, api_5xx=[(3, leak), (0, 180)], slow_pages=[(15, leak), (0, 180)]),
        "alert_rule_test": [*expect(leak - STEP, both),
                            *expect(leak + 100, both),     # 6h windows still over 1x
                            *expect(leak + 140, {})],      # 6h under 1x; the 3d still over
    }


@pytest.fixture
def slo_rules(tmp_path):
    """The rendered SLO rules without their annotations, and the latency threshold."""
    s = Settings.from_env({"RUN_DIR": str(tmp_path)})
    render.write_alerting(s)
    rules = yaml.safe_load((tmp_path / "prometheus" / "rules" / "slo.yaml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    return tmp_path, rules, s.slo_latency_threshold


def promtool_test(workdir, rules: dict, tests: list[dict]) -> subprocess.CompletedProcess:
    require_tool("promtool")
    (workdir / "slo-under-test.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    spec = {"rule_files": ["slo-under-test.yaml"], "evaluation_interval": f"{STEP}m", "tests": tests}
    (workdir / "slo-test.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return subprocess.run([str(tools.path("promtool")), "test", "rules", "slo-test.yaml"], cwd=workdir,
                          capture_output=True, text=True, timeout=600)


def test_slow_burns_fire_and_resolve_over_days(slo_rules):
    workdir, rules, threshold = slo_rules
    result = promtool_test(workdir, rules, [episode_test(threshold), leak_test(threshold)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_without_the_short_window_the_episode_would_not_resolve(slo_rules):
    workdir, rules, threshold = slo_rules
    (alert,) = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "AvailabilitySlowBurn"]
    assert 'window="30m"' in alert["expr"]
    alert["expr"] = alert["expr"].replace('window="30m"', 'window="6h"')
    result = promtool_test(workdir, rules, [episode_test(threshold)])
    assert result.returncode != 0
    assert "AvailabilitySlowBurn" in result.stdout + result.stderr
