"""Every LogQL query the Kubernetes deployment ships or documents parses with Grafana's own
grammar (@grafana/lezer-logql, as tests/validators/test_dashboards.py uses): the dashboards
as the chart's ConfigMap carries them, and the queries in README "Past one host"."""
from __future__ import annotations

import json
import re

from tests.deploy.conftest import by_kind
from tests.validators.test_dashboards import all_panels, dashboard_vars, interpolate, parse_logql
from tests.validators.validator_helpers import REPO_ROOT

README = REPO_ROOT / "README.md"


def readme_queries() -> list[str]:
    text = README.read_text()
    section = text.split("## Past one host", 1)[1].split("\n## ", 1)[0]
    return [q.strip() for q in re.findall(r"```logql\n(.*?)```", section, re.S)]


def test_dashboard_queries_in_the_chart_configmap_parse(default_docs):
    exprs = []
    for cm in by_kind(default_docs, "ConfigMap"):
        for name, text in cm.get("data", {}).items():
            if name.endswith(".json"):
                dash = json.loads(text)
                variables = dashboard_vars(dash)
                exprs += [interpolate(t["expr"], variables) for p in all_panels(dash)
                          for t in p.get("targets", []) if "expr" in t]
    assert len(exprs) > 10
    bad = [r for r in parse_logql(exprs) if not r["ok"]]
    assert not bad, bad


def test_readme_queries_parse():
    queries = readme_queries()
    assert len(queries) >= 2, "README 'Past one host' shows how to check the pipeline in Loki"
    bad = [r for r in parse_logql(queries) if not r["ok"]]
    assert not bad, bad


def test_the_grammar_rejects_a_broken_query():
    """Negative control."""
    (result,) = parse_logql(['sum by (layer) (count_over_time({service_name="pc-builder"} [5m])'])
    assert not result["ok"]
