"""Grafana provisioning and dashboards are consistent, and every LogQL query
parses with Grafana's own LogQL grammar (@grafana/lezer-logql, run by
tests/logql/parse.mjs under node)."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.validators.validator_helpers import REPO_ROOT, require_tool

GRAFANA = REPO_ROOT / "observability/grafana"
DASHBOARD_DIR = GRAFANA / "dashboards"
DATASOURCES = GRAFANA / "provisioning/datasources/loki.yaml"
PROVIDERS = GRAFANA / "provisioning/dashboards/dashboards.yaml"
LOGQL_DIR = REPO_ROOT / "tests/logql"
PARSER = LOGQL_DIR / "parse.mjs"
EXPECTED_UIDS = {"stack-overview", "request-trace"}

# Grafana replaces these before the query reaches Loki. Values are only
# placeholders of the right *shape* (a duration, a regex, a string).
BUILTIN_VARS = {
    "__auto": "1m",
    "__interval": "1m",
    "__rate_interval": "1m",
    "__range": "1h",
    "__interval_ms": "60000",
    "__range_s": "3600",
}
_VAR_REF = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


# ---------------------------------------------------------------- helpers


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
    samples = {"textbox": "0123456789abcdef", "query": ".*", "custom": ".*", "constant": "x"}
    return {v["name"]: samples.get(v["type"], "x") for v in dash.get("templating", {}).get("list", [])}


def collect_exprs() -> list[tuple[str, str, str]]:
    """(where, raw expr, interpolated expr) for every Loki target."""
    out = []
    for fname, dash in load_dashboards().items():
        variables = dashboard_vars(dash)
        for panel in all_panels(dash):
            for t in panel.get("targets", []):
                if "expr" in t:
                    where = f"{fname} / {panel.get('title')} / {t.get('refId')}"
                    out.append((where, t["expr"], interpolate(t["expr"], variables)))
    return out


def parse_logql(exprs: list[str]) -> list[dict]:
    node = require_tool("node")
    require_tool("lezer-logql")
    res = subprocess.run([node, str(PARSER)], input=json.dumps(exprs), capture_output=True, text=True, cwd=LOGQL_DIR)
    assert res.returncode == 0, f"parse.mjs failed: {res.stderr}"
    results = json.loads(res.stdout)
    assert [r["expr"] for r in results] == exprs
    return results


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict]:
    return load_dashboards()


@pytest.fixture(scope="module")
def provisioned_uid() -> str:
    cfg = yaml.safe_load(DATASOURCES.read_text())
    loki = [d for d in cfg["datasources"] if d["type"] == "loki"]
    assert len(loki) == 1
    return loki[0]["uid"]


# ----------------------------------------------------------- provisioning


def test_datasource_provisioning(provisioned_uid):
    ds = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]
    assert provisioned_uid == "loki"
    assert ds["url"] == "http://loki:3100"
    assert ds["access"] == "proxy"
    # Grafana expands $VAR in provisioning files: literal $ must be $$.
    for field in ds.get("jsonData", {}).get("derivedFields", []):
        assert "${__value.raw}" not in field["url"].replace("$${", "{"), field["url"]


def test_dashboard_provider_points_at_mounted_dir():
    cfg = yaml.safe_load(PROVIDERS.read_text())
    (provider,) = cfg["providers"]
    assert provider["type"] == "file"
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    target = next(m.split(":")[1] for m in mounts if m.split(":")[0].rstrip("/").endswith("observability/grafana/dashboards"))
    assert provider["options"]["path"] == target


# -------------------------------------------------------------- dashboards


def test_dashboards_have_stable_uids(dashboards):
    uids = {}
    for fname, dash in dashboards.items():
        uid = dash.get("uid")
        assert uid and re.fullmatch(r"[a-z0-9-]{1,40}", uid), f"{fname}: bad uid {uid!r}"
        assert Path(fname).stem == uid, f"{fname}: file name and uid differ"
        assert dash.get("id") is None, f"{fname}: provisioned dashboards must not carry a numeric id"
        assert dash.get("title")
        uids[uid] = fname
    assert set(uids) == EXPECTED_UIDS


def test_every_panel_and_target_uses_provisioned_datasource(dashboards, provisioned_uid):
    checked = 0
    for fname, dash in dashboards.items():
        for panel in all_panels(dash):
            if panel.get("type") == "row":
                continue
            assert panel.get("datasource") == {"type": "loki", "uid": provisioned_uid}, (fname, panel.get("title"))
            assert panel.get("targets"), (fname, panel.get("title"), "no targets")
            for t in panel["targets"]:
                assert t.get("datasource") == {"type": "loki", "uid": provisioned_uid}, (fname, panel.get("title"))
                checked += 1
        for var in dash.get("templating", {}).get("list", []):
            if var.get("type") == "query":
                assert var.get("datasource") == {"type": "loki", "uid": provisioned_uid}, (fname, var["name"])
    assert checked > 0


def test_panel_ids_unique(dashboards):
    for fname, dash in dashboards.items():
        ids = [p["id"] for p in all_panels(dash)]
        assert len(ids) == len(set(ids)), fname


def test_request_id_is_never_a_stream_selector(dashboards):
    for where, expr, _ in collect_exprs():
        for selector in re.findall(r"\{[^}]*\}", re.sub(r"\{\{.*?\}\}", "", expr)):
            assert "request_id" not in selector, f"{where}: request_id is structured metadata, not a label"


def test_request_trace_dashboard(dashboards):
    dash = dashboards["request-trace.json"]
    var = {v["name"]: v for v in dash["templating"]["list"]}["request_id"]
    assert var["type"] == "textbox"
    panels = all_panels(dash)
    logs = [p for p in panels if p["type"] == "logs"]
    assert any(
        t["expr"] == '{service_name="pc-builder"} | request_id="$request_id"' for p in logs for t in p["targets"]
    ), "logs panel must filter on the request_id structured metadata across all layers"
    assert all(p["options"]["sortOrder"] == "Ascending" for p in logs)
    tables = [p for p in panels if p["type"] == "table"]
    assert any(
        re.search(r'\| request_id="\$request_id" \| json\b', t["expr"]) for p in tables for t in p["targets"]
    ), "table of steps must parse the lines with | json"


def test_request_trace_twelve_steps(dashboards):
    """The "Twelve steps" table: one instant query per step time (T..) and per hop (H..),
    turned into rows step / name / layer / time / hop / source by the transformations."""
    dash = dashboards["request-trace.json"]
    panels = all_panels(dash)
    (table,) = [p for p in panels if p["title"] == "Twelve steps"]
    assert table["type"] == "table"
    assert table["gridPos"]["y"] <= 4, "Twelve steps belongs near the top"
    targets = {t["refId"]: t for t in table["targets"]}
    assert {f"T{n:02d}" for n in range(1, 13)} <= set(targets), "one time query per step"
    assert {f"H{n:02d}" for n in range(2, 13)} <= set(targets), "one hop query per step after the first"
    for ref, t in targets.items():
        assert t["queryType"] == "instant", ref
        assert '| request_id="$request_id"' in t["expr"], ref
        assert "{{ $" not in t["expr"] and "{{- $" not in t["expr"], f"{ref}: Go template variables clash with Grafana's $vars"
        what = re.findall(r'what="(\w+)"|"what", "(\w+)"', t["expr"])
        values = {a or b for a, b in what}
        assert values == ({"time"} if ref.startswith("T") else {"time", "hop_ms"} if ref != "H06b" else {"hop_ms"}), (ref, values)
        for src in re.findall(r'source="(\w+)"|"source", "(\w+)"', t["expr"]):
            assert (src[0] or src[1]) in ("measured", "derived"), (ref, src)
    for n in range(1, 13):
        own = targets[f"T{n:02d}"]["expr"]
        assert re.search(rf'step="{n:02d}"|"step", "{n:02d}"', own), f"T{n:02d} must label its row step {n:02d}"
    # the derivations of ./stack trace (stackctl/trace.py)
    assert "subf .msec .request_time" in targets["T02"]["expr"], "step 2 = msec - request_time"
    assert "unwrap start_us" in targets["T04"]["expr"]
    assert 'event="request.started"' in targets["T05"]["expr"]
    assert 'event="request.finished"' in targets["T07"]["expr"]
    assert "addf .start_us .duration_us" in targets["T09"]["expr"], "step 9 = start_us + duration_us"
    assert "unwrap msec" in targets["T11"]["expr"], "step 11 = msec"
    assert "requestStart" in targets["T01"]["expr"] and "responseEnd" in targets["T12"]["expr"]
    assert any(re.search(r'\| request_id="\$request_id" \| json\b', t["expr"]) for t in targets.values())

    transforms = [t["id"] for t in table["transformations"]]
    assert transforms == ["labelsToFields", "merge", "organize", "sortBy"], transforms
    l2f, _, organize, sort = table["transformations"]
    assert l2f["options"].get("valueLabel") == "what", "the what label names the value column (time / hop_ms)"
    assert organize["options"]["renameByName"] == {"time": "time (epoch s)", "hop_ms": "hop (ms)"}
    assert {"step", "name", "layer", "source"} <= set(organize["options"]["indexByName"])
    assert sort["options"]["sort"] == [{"field": "step", "desc": False}]

    texts = [p for p in panels if p["type"] == "text"]
    assert any(
        all(word in p["options"]["content"] for word in ("measured", "derived", "missing", "never invented")) for p in texts
    ), "a text panel must say what measured, derived and a missing row mean"


def test_stack_overview_dashboard(dashboards):
    dash = dashboards["stack-overview.json"]
    text = json.dumps(dash)
    exprs = [t["expr"] for p in all_panels(dash) for t in p["targets"]]
    joined = "\n".join(exprs)
    assert "unwrap request_time" in joined
    assert "unwrap upstream_response_time" in joined
    for q in ("0.5", "0.95", "0.99"):
        assert f"quantile_over_time({q}," in joined, q
    assert re.search(r"sum by \(instance\)", joined), "requests per uWSGI instance"
    assert re.search(r"sum by \(layer, status_class\)", joined), "requests by layer and status class"
    assert "topk(" in joined, "slowest URIs"
    assert "/d/request-trace?var-request_id=${__value.raw}" in text, "errors must link to the trace dashboard"


# ------------------------------------------------------------------ LogQL


def test_all_logql_expressions_parse():
    collected = collect_exprs()
    assert len(collected) >= 10
    results = parse_logql([interp for _, _, interp in collected])
    bad = [f"{where}\n    {raw}\n    errors: {r['errors']}" for (where, raw, _), r in zip(collected, results) if not r["ok"]]
    assert not bad, "LogQL syntax errors:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    "expr",
    [
        '{service_name="pc-builder" | json',  # unclosed selector
        'sum(rate({service_name="pc-builder"}[5m]',  # unclosed paren
        '{service_name="pc-builder"} | json | unwrap',  # unwrap without label
        'quantile_over_time(0.95, {layer="nginx"} | json | unwrap request_time) by (layer)',  # no range
        'rate({layer="nginx"}[$__auto])',  # uninterpolated Grafana variable
        "",
    ],
)
def test_parser_detects_broken_expressions(expr):
    """Negative control: the parser helper must flag broken LogQL."""
    (result,) = parse_logql([expr])
    assert result["ok"] is False, f"not detected as broken: {expr!r}"


def test_parser_accepts_known_good():
    good = [
        '{service_name="pc-builder"} | request_id="abc"',
        'sum by (layer) (rate({service_name="pc-builder"} | json | __error__="" [5m]))',
    ]
    assert all(r["ok"] for r in parse_logql(good))


def test_interpolation_rejects_undefined_variables():
    with pytest.raises(AssertionError, match="undefined variable"):
        interpolate('{a="$nope"}', {})
    assert interpolate('{a=~"$env"} [$__auto]', {"env": ".*"}) == '{a=~".*"} [1m]'
