"""The provisioned Grafana dashboards as data: every panel, every Loki and Prometheus query
(with Grafana's variables replaced by values of the right shape), Grafana's own LogQL grammar
to parse the Loki ones (@grafana/lezer-logql, run by tests/logql/parse.mjs) and the real
Prometheus's parser (promtool) for the PromQL ones."""
from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass

from tests.support.tools import REPO_ROOT, require_tool

GRAFANA = REPO_ROOT / "observability/grafana"
DASHBOARD_DIR = GRAFANA / "dashboards"
DATASOURCES = GRAFANA / "provisioning/datasources/loki.yaml"
PROMETHEUS_DATASOURCE = GRAFANA / "provisioning/datasources/prometheus.yaml"
PROVIDERS = GRAFANA / "provisioning/dashboards/dashboards.yaml"
LOGQL_DIR = REPO_ROOT / "tests/logql"
PARSER = LOGQL_DIR / "parse.mjs"
SCHEMA_CHECK = LOGQL_DIR / "check_schema.mjs"
NODE_SUITE = LOGQL_DIR / "dashboards.test.mjs"
#: Writes the dashboards (``python -m stackctl.dashboards [--check]``).
GENERATOR = "stackctl.dashboards"
# Grafana replaces these before the query reaches Loki. Values are only
# placeholders of the right *shape* (a duration, a regex, a string).
BUILTIN_VARS = {
    "__auto": "1m",
    "__interval": "1m",
    "__rate_interval": "1m",
    "__range": "1h",
    "__interval_ms": "60000",
    "__range_s": "3600",
    "__url_time_range": "from=now-1h&to=now",
}
_VAR_REF = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")



def load_dashboards() -> dict[str, dict]:
    files = sorted(DASHBOARD_DIR.glob("*.json"))
    assert files, f"no dashboards in {DASHBOARD_DIR}"
    return {f.name: json.loads(f.read_text()) for f in files}


def all_panels(dash: dict) -> list[dict]:
    out = []
    for p in dash.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))  # collapsed rows
    return out


def interpolate(expr: str, variables: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name in BUILTIN_VARS:
            return BUILTIN_VARS[name]
        if name in variables:
            return variables[name]
        raise AssertionError(f"query uses undefined variable ${name}: {expr}")

    return _VAR_REF.sub(sub, expr)


def dashboard_vars(dash: dict) -> dict[str, str]:
    """A value of the right shape for each variable: a text box's default when it has one
    (a number, a regular expression), else a request id."""
    samples = {"textbox": "0123456789abcdef", "query": ".*", "custom": ".*", "constant": "x"}
    return {v["name"]: (v.get("query") if v["type"] == "textbox" and v.get("query") else samples.get(v["type"], "x"))
            for v in dash.get("templating", {}).get("list", [])}


@dataclass
class Target:
    """One Loki query of one panel, with the dashboard's variables replaced."""
    where: str        # "<dashboard file> / <panel title> / <refId>"
    dashboard: str
    panel: dict
    ref_id: str
    raw: str
    expr: str
    query_type: str   # "instant" or "range", as Grafana sends it

    @property
    def is_log_query(self) -> bool:
        """A log query (lines), not a metric query (numbers): it starts with a selector."""
        return self.expr.lstrip().startswith("{")


def loki_targets(values: dict[str, str] | None = None, datasource: str = "loki") -> list[Target]:
    """Every Loki (or ``datasource``) target of every dashboard; ``values`` gives variables
    real values (else placeholders of the right shape, :func:`dashboard_vars`)."""
    out = []
    for fname, dash in load_dashboards().items():
        defaults = dashboard_vars(dash)
        variables = {**defaults, **{k: v for k, v in (values or {}).items() if k in defaults}}
        for panel in all_panels(dash):
            for t in panel.get("targets", []):
                if "expr" in t and t.get("datasource", {}).get("type") == datasource:
                    where = f"{fname} / {panel.get('title')} / {t.get('refId')}"
                    out.append(Target(where, fname, panel, t.get("refId"), t["expr"],
                                      interpolate(t["expr"], variables), t.get("queryType", "range")))
    return out


def prometheus_targets() -> list[Target]:
    """Every Prometheus target of every dashboard (instant ones as ``query_type`` instant)."""
    return [Target(t.where, t.dashboard, t.panel, t.ref_id, t.raw, t.expr,
                   "instant" if next(x for x in t.panel["targets"] if x["refId"] == t.ref_id).get("instant")
                   else "range")
            for t in loki_targets(datasource="prometheus")]


def parse_promql(exprs: list[str], workdir) -> list[str]:
    """The real Prometheus's parser (promtool, Debian's prometheus package) on each
    expression, as recording rules: the error of each (None when it parses)."""
    promtool = require_tool("promtool")
    out = []
    for n, expr in enumerate(exprs):
        path = workdir / f"expr{n}.yaml"
        path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": [{"record": "x", "expr": expr}]}]}))
        res = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
        out.append(None if res.returncode == 0 else (res.stdout + res.stderr).strip())
    return out


def collect_exprs() -> list[tuple[str, str, str]]:
    """(where, raw expr, interpolated expr) for every Loki target."""
    return [(t.where, t.raw, t.expr) for t in loki_targets()]


def parse_logql(exprs: list[str]) -> list[dict]:
    node = require_tool("node")
    require_tool("lezer-logql")
    res = subprocess.run([node, str(PARSER)], input=json.dumps(exprs), capture_output=True, text=True, cwd=LOGQL_DIR)
    assert res.returncode == 0, f"parse.mjs failed: {res.stderr}"
    results = json.loads(res.stdout)
    assert [r["expr"] for r in results] == exprs
    return results
