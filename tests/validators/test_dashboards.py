"""Grafana provisioning and dashboards are consistent, and checked with Grafana's own code:
every LogQL query parses with Grafana's LogQL grammar (@grafana/lezer-logql, run by
tests/logql/parse.mjs), both dashboards type-check against Grafana's dashboard model
(@grafana/schema, tests/logql/check_schema.mjs), and the tables render as designed through
Grafana's data-frame and transformation code (@grafana/data, tests/logql/dashboards.test.mjs,
run by node's test runner from here). The dashboards are written by
observability/grafana/generate_dashboards.py; the committed JSON must be its output."""
from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.dashboards import (DASHBOARD_DIR, DATASOURCES, GENERATOR, GRAFANA, LOGQL_DIR,
                                      NODE_SUITE, PROVIDERS, SCHEMA_CHECK, all_panels, collect_exprs,
                                      interpolate, load_dashboards, parse_logql)
from tests.support.tools import REPO_ROOT, require_tool

#: Loki's parser refuses longer queries (pkg/logql/syntax/parser.go, maxInputSize = 128 KiB in Loki 3).
LOKI_MAX_QUERY = 131072
#: What a Loki target may carry (the Loki datasource's query model, dataquery.gen.ts).
LOKI_TARGET_KEYS = {"refId", "datasource", "editorMode", "expr", "queryType", "legendFormat", "maxLines",
                    "instant", "range", "step", "resolution", "hide", "direction"}
#: Stream labels and structured metadata: parsing them again with | json duplicates them.
LABELS_AND_METADATA = {"service_name", "env", "layer", "instance", "request_id", "method", "status", "path"}
EXPECTED_UIDS = {"stack-overview", "request-trace"}

# ---------------------------------------------------------------- helpers


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
    (link,) = [f["url"] for f in ds["jsonData"]["derivedFields"] if f["name"] == "request_id"]
    # the trace opens on the hour around the line, not on the default now-6h
    assert link == "/d/request-trace?var-request_id=$${__value.raw}&time=$${__value.time}&time.window=3600000"


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
            if panel.get("type") in ("row", "text"):  # no query: no datasource, no targets
                assert not panel.get("targets"), (fname, panel.get("title"))
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
    assert var["type"] == "textbox" and var["current"]["value"] == ""
    panels = all_panels(dash)
    logs = [p for p in panels if p["type"] == "logs"]
    assert any(
        t["expr"] == '{service_name="pc-builder"} | request_id!="" | request_id="$request_id"'
        for p in logs for t in p["targets"]
    ), "logs panel must filter on the request_id structured metadata across all layers"
    assert all(p["options"]["sortOrder"] == "Ascending" for p in logs)


def test_an_empty_request_id_matches_nothing(dashboards):
    """request_id="" alone matches every line without an id: every use of the variable is
    preceded by request_id!="", and the first stat's no-value text is the hint."""
    uses = 0
    for where, expr, _ in collect_exprs():
        for m in re.finditer(r'request_id="\$request_id"', expr):
            uses += 1
            assert expr[: m.start()].endswith('| request_id!="" | '), f"{where}: unguarded request_id filter"
    assert uses > 20
    (hint,) = [p for p in all_panels(dashboards["request-trace.json"]) if p["title"] == "Log lines for this request id"]
    assert hint["gridPos"]["y"] == 0 and hint["gridPos"]["x"] == 0
    assert "Paste a request id" in hint["fieldConfig"]["defaults"]["noValue"]
    (text,) = [p for p in all_panels(dashboards["request-trace.json"]) if p["type"] == "text"]
    assert text["options"]["content"].startswith("**Paste a request id")


def twelve_steps_module():
    """observability/grafana/twelve_steps.py (a file beside the dashboards, not a package)."""
    if "twelve_steps" not in sys.modules:
        spec = importlib.util.spec_from_file_location("twelve_steps", GRAFANA / "twelve_steps.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["twelve_steps"] = module  # its dataclass looks itself up there
        spec.loader.exec_module(module)
    return sys.modules["twelve_steps"]


def test_request_trace_twelve_steps(dashboards):
    """Two instant queries, one per column (TIME, HOP), whose series carry the same row
    labels; Grafana's datasource makes one table frame of each and the merge joins them
    (the rendering itself is checked with Grafana's code in tests/logql/dashboards.test.mjs)."""
    ts = twelve_steps_module()
    (table,) = [p for p in all_panels(dashboards["request-trace.json"]) if p["title"] == "Twelve steps"]
    assert table["type"] == "table" and table["gridPos"]["y"] <= 4
    targets = {t["refId"]: t for t in table["targets"]}
    assert set(targets) == {"TIME", "HOP"}
    assert all(t["queryType"] == "instant" for t in targets.values())
    assert targets["TIME"]["expr"] == ts.time_query() and targets["HOP"]["expr"] == ts.hop_query()
    for step, build in ts.TIMES.items():
        own = build()
        assert f"({own})" in targets["TIME"]["expr"], step
        assert re.search(rf'step="{step}"|"step", "{step}"', own), f"step {step} must label its row {step}"
        if step != "01":  # a hop keeps its step's labels: the step's own time is its left operand
            assert ts.hop(step).startswith(f"(({own}) - on() group_left() "), step
            assert f"({ts.hop(step)})" in targets["HOP"]["expr"], step
    assert "{{ subf .msec .request_time }}" in ts.t02(), "step 2 = msec - request_time"
    assert "unwrap start_us" in ts.t04()
    assert 'event="request.finished"' in ts.t05() and "unwrap start_us" in ts.t05(), "step 5: start_us of the wide event"
    assert "unwrap db_start_us" in ts.t06() and "request.started" not in ts.t06(), "step 6: db_start_us"
    assert "db.query" not in targets["TIME"]["expr"] + targets["HOP"]["expr"], "the fine events are DEBUG only"
    assert 'event="request.finished"' in ts.t07()
    assert "addf .start_us .duration_us" in ts.t09(), "step 9 = start_us + duration_us"
    assert "unwrap msec" in ts.t11(), "step 11 = msec"
    assert "requestStart" in ts.t01() and "responseEnd" in ts.t12()
    for row in ts.ROWS.values():
        assert row.source in ("measured", "derived")
        assert "{{" not in re.sub(r"\{\{ \.\w+ \}\}", "", row.detail), "details use {{ .field }} only"

    transforms = [t["id"] for t in table["transformations"]]
    assert transforms == ["merge", "organize", "sortBy"], transforms
    organize = table["transformations"][1]["options"]
    assert organize["renameByName"] == {"Value #TIME": "time (epoch s)", "Value #HOP": "hop (ms)"}
    texts = [p for p in all_panels(dashboards["request-trace.json"]) if p["type"] == "text"]
    assert any(all(w in p["options"]["content"] for w in ("measured", "derived", "missing", "never invented"))
               for p in texts), "a text panel must say what measured, derived and a missing row mean"


def test_fixtures_carry_the_labels_the_queries_set():
    """The Loki answers the node tests use (tests/logql/fixtures/loki) match the queries:
    every series has the row labels of one of its step's variants, its detail rendered
    from that variant's template."""
    ts = twelve_steps_module()
    checked = 0
    for path in sorted((LOGQL_DIR / "fixtures/loki").glob("*.json")):
        responses = json.loads(path.read_text())["responses"]
        for column in [c for c in ("TIME", "HOP") if c in responses]:
            for series in responses[column]["data"]["result"]:
                m = series["metric"]
                assert set(m) == set(ts.ROW_LABELS), (path.name, m)
                variants = [r for r in ts.ROWS.values() if r.step == m["step"]]
                assert any(
                    (r.name, r.layer, r.source) == (m["name"], m["layer"], m["source"])
                    and re.fullmatch(".+?".join(map(re.escape, re.split(r"\{\{ \.\w+ \}\}", r.detail))), m["detail"])
                    for r in variants
                ), (path.name, column, m)
                checked += 1
    assert checked > 40


def test_step_10_does_not_need_a_connect_time():
    """A 502 whose connection failed logs upstream_connect_time "-" or "-, -": step 10
    (and 9, whose bound reads it) must not filter on it; step 3 needs only the last one."""
    ts = twelve_steps_module()
    assert "upstream_connect_time" not in ts.t10()
    connects = re.search(r'upstream_connect_time=~"([^"]+)"', ts.t03()).group(1)
    for value, ok in (("0.000", True), ("-, 0.000", True), ("0.001, 0.000", True), ("-", False), ("-, -", False)):
        assert bool(re.fullmatch(connects, value)) is ok, value
    responses = re.search(r'upstream_response_time=~"([^"]+)"', ts.t10()).group(1)
    assert re.fullmatch(responses, "0.000, 0.000") and re.fullmatch(responses, "0.005")


def test_text_panel_tells_the_measured_negative_hops():
    text = [p for p in all_panels(load_dashboards()["request-trace.json"]) if p["type"] == "text"][0]
    content = text["options"]["content"]
    assert "above -1 ms" not in content and "-1.3 ms" in content


def overview_panel(dashboards, title: str) -> dict:
    (panel,) = [p for p in all_panels(dashboards["stack-overview.json"]) if p["title"].startswith(title)]
    return panel


def test_stack_overview_dashboard(dashboards):
    dash = dashboards["stack-overview.json"]
    text = json.dumps(dash)
    exprs = [t["expr"] for p in all_panels(dash) for t in p.get("targets", [])]
    joined = "\n".join(exprs)
    assert "unwrap request_time" in joined
    assert "unwrap upstream_response_time" in joined
    for q in ("0.5", "0.95", "0.99"):
        assert f"quantile_over_time({q}," in joined, q
    assert re.search(r"sum by \(instance\)", joined), "requests per uWSGI instance"
    assert re.search(r"sum by \(layer, status_class\)", joined), "requests by layer and status class"
    assert "/d/request-trace?var-request_id=${__value.raw}&time=${__value.time}&time.window=" in text, \
        "errors must link to the trace dashboard on the time around the line"


def test_error_rate_draws_a_real_zero(dashboards):
    """5xx / all per layer: a layer with requests and no 5xx has no 5xx series, so the
    numerator falls back to 0 x its requests (0 %, not a missing line)."""
    (expr,) = [t["expr"] for t in overview_panel(dashboards, "Error rate")["targets"]]
    m = re.fullmatch(r"\((?P<errors>.+) or \(0 \* (?P<all>sum by \(layer\) \(.+\))\)\) / (?P<den>.+)", expr)
    assert m, expr
    assert m["all"] == m["den"] and "status >= 500" in m["errors"] and "status" not in m["all"]


def test_per_instance_legend_adds_up_no_rates(dashboards):
    calcs = overview_panel(dashboards, "Requests/s per uWSGI instance")["options"]["legend"]["calcs"]
    assert "sum" not in calcs and "mean" in calcs


def test_slowest_paths_and_routes_ignore_query_strings(dashboards):
    paths = overview_panel(dashboards, "Slowest paths")["targets"][0]["expr"]
    assert 'label_format path=`{{ regexReplaceAll "[?#].*" .uri "" }}`' in paths
    assert paths.endswith("by (method, path))") and "by (method, uri)" not in paths
    routes = overview_panel(dashboards, "Slowest routes")["targets"][0]["expr"]
    assert routes.endswith("by (method, route))") and 'event="request.finished"' in routes
    assert re.fullmatch(r"[?#].*", "?cpu=1") and re.sub(r"[?#].*", "", "/pc-builder-app/builder?cpu=1") == \
        "/pc-builder-app/builder"


def test_error_panels_show_5xx_failed_logins_and_uwsgi_failures(dashboards):
    for title in ("Recent errors", "Error log lines"):
        (expr,) = [t["expr"] for t in overview_panel(dashboards, title)["targets"]]
        assert "status >= 500" in expr
        assert '(layer="nginx" and status == 401)' in expr, f"{title}: failed logins (401 at the edge)"
        assert 'event="request.failed"' in expr and 'level=~"(?i)(error|critical)"' in expr
        uwsgi = re.search(r'event="uwsgi.server" and msg=~"([^"]+)" and msg!~"([^"]+)"', expr)
        assert uwsgi, f"{title}: uWSGI's own failure messages"
        failure, notice = (re.compile(g.replace("(?i)", ""), re.IGNORECASE) for g in uwsgi.groups())

        def shown(msg: str) -> bool:
            return bool(failure.fullmatch(msg)) and not notice.fullmatch(msg)

        for msg in ("DAMN ! worker 1 (pid: 31) died, killed by signal 9 :( trying respawn ...",
                    "*** HARAKIRI ON WORKER 2 (pid: 40, try: 1) ***",
                    "uwsgi_response_write_body_do(): Broken pipe [core/writer.c line 341] during GET /x",
                    "!!! uWSGI process 12 got Segmentation Fault !!!"):
            assert shown(msg), msg
        # what every healthy start prints (seen in the real Loki: tests/real/test_dashboard_queries.py)
        for msg in ("spawned uWSGI worker 1 (pid: 30, cores: 4)", "WSGI app 0 (mountpoint='') ready in 1 seconds",
                    " *** WARNING: you have enabled harakiri without post buffering. Slow upload could be"
                    " rejected on post-unbuffered webservers *** ",
                    "unable to stat() /var/log/stack/uwsgi/app1.reopen, events will be triggered as soon as"
                    " the file is created"):
            assert not shown(msg), msg


def test_log_tables_parse_no_label_twice(dashboards):
    """`| json` of every field re-parses stream labels and metadata, which Loki then adds as
    duplicate `*_extracted` columns: the log tables name the fields they parse."""
    for dash in dashboards.values():
        for panel in all_panels(dash):
            if panel["type"] != "table":
                continue
            for t in panel["targets"]:
                for fields in re.findall(r"\| json( [\w, ]+)?(?= \||$)", t["expr"]):
                    assert fields, f"{panel['title']}: bare | json"
                    parsed = {f.strip() for f in fields.split(",")}
                    assert not parsed & LABELS_AND_METADATA, (panel["title"], parsed & LABELS_AND_METADATA)


def test_targets_are_loki_queries_loki_accepts(dashboards):
    longest_id = "x" * 128  # NGINX accepts ids of up to 128 characters
    for where, expr, _ in collect_exprs():
        assert len(expr.replace("$request_id", longest_id)) < LOKI_MAX_QUERY, f"{where}: too long for Loki"
    for dash in dashboards.values():
        for panel in all_panels(dash):
            for t in panel.get("targets", []):
                assert set(t) <= LOKI_TARGET_KEYS, (panel["title"], set(t) - LOKI_TARGET_KEYS)


# ------------------------------------------------------- Grafana's own code


def test_committed_dashboards_are_the_generators_output():
    res = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def run_schema_check(paths: list[Path]) -> list[dict]:
    node = require_tool("node")
    require_tool("lezer-logql")  # the npm folder ./stack test fills (typescript, @grafana/schema with it)
    res = subprocess.run([node, str(SCHEMA_CHECK), *map(str, paths)], capture_output=True, text=True,
                         cwd=LOGQL_DIR, timeout=300)
    assert res.returncode == 0, f"check_schema.mjs failed: {res.stderr}"
    return json.loads(res.stdout)


def test_dashboards_type_check_against_grafana_schema():
    results = run_schema_check(sorted(DASHBOARD_DIR.glob("*.json")))
    assert len(results) == 2
    bad = [f"{r['dashboard']}:\n  " + "\n  ".join(r["errors"]) for r in results if r["errors"]]
    assert not bad, "dashboards do not match @grafana/schema:\n" + "\n".join(bad)


def test_schema_check_catches_typos(tmp_path):
    """Negative control: a misspelt table option, an unknown legend placement, a wrong
    override value and a misspelt transformation option are all reported."""
    dash = load_dashboards()["stack-overview.json"]
    by_title = {p["title"]: p for p in dash["panels"]}
    by_title["Slowest paths (NGINX request_time)"]["options"]["showHeadr"] = True
    by_title["Error rate (5xx share) by layer"]["options"]["legend"]["placement"] = "botom"
    by_title["Slowest routes (app duration_ms)"]["fieldConfig"]["overrides"][0]["properties"].append(
        {"id": "custom.width", "value": "wide"})
    by_title["Slowest routes (app duration_ms)"]["transformations"][0]["options"]["excludeByNme"] = {}
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(dash))
    (result,) = run_schema_check([broken])
    errors = "\n".join(result["errors"])
    for word in ("showHeadr", "botom", '"wide"', "excludeByNme"):
        assert word in errors, f"{word} not reported:\n{errors}"


def test_tables_render_as_designed_with_grafanas_code():
    """tests/logql/dashboards.test.mjs under node's test runner: Grafana's Loki frames and
    transformations on real requests' answers, with the pre-issue-14 panel as negative control."""
    node = require_tool("node")
    require_tool("lezer-logql")
    res = subprocess.run([node, "--test", str(NODE_SUITE)], capture_output=True, text=True, cwd=LOGQL_DIR,
                         timeout=300)
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-2000:]
    assert re.search(r"^# pass [1-9]\d*$", res.stdout, re.M) and re.search(r"^# fail 0$", res.stdout, re.M)


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
