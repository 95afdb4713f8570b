"""Every LogQL query the Kubernetes deployment ships or documents parses with Grafana's own
grammar (@grafana/lezer-logql, as tests/validators/test_dashboards.py uses): the dashboards
as the chart's ConfigMap carries them, and the queries deploy/README.md shows."""
from __future__ import annotations

import json
import re

from tests.support.chart import by_kind
from tests.support.dashboards import all_panels, dashboard_vars, interpolate, parse_logql
from tests.support.tools import REPO_ROOT

DEPLOY_README = REPO_ROOT / "deploy" / "README.md"


def readme_queries() -> list[str]:
    return [q.strip() for q in re.findall(r"```logql\n(.*?)```", DEPLOY_README.read_text(), re.S)]


def test_dashboard_queries_in_the_chart_configmap_parse(default_docs):
    exprs = []
    for cm in by_kind(default_docs, "ConfigMap"):
        for name, text in cm.get("data", {}).items():
            if name.endswith(".json"):
                dash = json.loads(text)
                variables = dashboard_vars(dash)
                exprs += [interpolate(t["expr"], variables) for p in all_panels(dash)
                          for t in p.get("targets", []) if t.get("datasource", {}).get("type") == "loki"]
    assert len(exprs) > 10
    bad = [r for r in parse_logql(exprs) if not r["ok"]]
    assert not bad, bad


def test_readme_queries_parse():
    queries = readme_queries()
    assert len(queries) >= 2, "deploy/README.md shows how to check the pipeline in Loki"
    bad = [r for r in parse_logql(queries) if not r["ok"]]
    assert not bad, bad


def test_the_grammar_rejects_a_broken_query():
    """Negative control."""
    (result,) = parse_logql(['sum by (layer) (count_over_time({service_name="pc-builder"} [5m])'])
    assert not result["ok"]
