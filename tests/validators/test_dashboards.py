"""Grafana provisioning and dashboards are consistent, and checked with Grafana's own code:
every LogQL query parses with Grafana's LogQL grammar (@grafana/lezer-logql, run by
tests/logql/parse.mjs), both dashboards type-check against Grafana's dashboard model
(@grafana/schema, tests/logql/check_schema.mjs), and the tables render as designed through
Grafana's data-frame and transformation code (@grafana/data, tests/logql/dashboards.test.mjs,
run by node's test runner from here). The dashboards are written by
``python -m stackctl.dashboards`` (stackctl/dashboards.py, the twelve steps' LogQL in
stackctl/trace/logql.py); the committed JSON must be its output."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stackctl import dashboards as generator
from stackctl.trace import logql as ts
from stackctl.trace.steps import STEPS
from tests.support.dashboards import (DASHBOARD_DIR, DATASOURCES, GENERATOR, LOGQL_DIR,
                                      NODE_SUITE, PROMETHEUS_DATASOURCE, PROVIDERS, SCHEMA_CHECK, all_panels,
                                      collect_exprs, interpolate, load_dashboards, parse_logql, parse_promql,
                                      prometheus_targets)
from tests.support.tools import REPO_ROOT, require_tool

#: Loki's parser refuses longer queries (pkg/logql/syntax/parser.go, maxInputSize = 128 KiB in Loki 3).
LOKI_MAX_QUERY = 131072
#: What a Loki target may carry (the Loki datasource's query model, dataquery.gen.ts).
LOKI_TARGET_KEYS = {"refId", "datasource", "editorMode", "expr", "queryType", "legendFormat", "maxLines",
                    "instant", "range", "step", "resolution", "hide", "direction"}
#: Stream labels and structured metadata: parsing them again with | json duplicates them.
LABELS_AND_METADATA = {"service_name", "env", "layer", "instance", "request_id", "method", "status", "path"}
EXPECTED_UIDS = {"stack-overview", "request-trace", "slo-alerts"}
#: What a Prometheus target may carry (the Prometheus datasource's query model, dataquery.gen.ts).
PROMETHEUS_TARGET_KEYS = {"refId", "datasource", "editorMode", "expr", "instant", "range", "legendFormat",
                          "format", "interval", "hide", "exemplar"}
#: The dashboards on Prometheus's series; the others are on Loki's lines.
PROMETHEUS_DASHBOARDS = {"slo-alerts.json"}

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
        if fname in PROMETHEUS_DASHBOARDS:
            continue  # test_slo_dashboard_reads_the_provisioned_prometheus
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


def panel_titled(dash: dict, title: str) -> dict:
    """The panel of that title, or the one panel whose title starts with it."""
    exact = [p for p in all_panels(dash) if p["title"] == title]
    (found,) = exact or [p for p in all_panels(dash) if p["title"].startswith(title)]
    return found


def test_request_trace_twelve_steps(dashboards):
    """Two instant queries, one per column (AT, HOP), whose series carry the same row
    labels; Grafana's datasource makes one table frame of each and the merge joins them
    (the rendering itself is checked with Grafana's code in tests/logql/dashboards.test.mjs)."""
    dash = dashboards["request-trace.json"]
    table = panel_titled(dash, "Twelve steps")
    assert table["type"] == "table"
    targets = {t["refId"]: t for t in table["targets"]}
    assert set(targets) == {"AT", "HOP"}
    assert all(t["queryType"] == "instant" for t in targets.values())
    assert targets["AT"]["expr"] == ts.at_query() and targets["HOP"]["expr"] == ts.hop_query()
    # AT: each step's time minus the earliest step's, in ms (not epoch seconds)
    assert ts.at_query() == f"(({ts.time_query()}) - on() group_left() min({ts.time_query()})) * 1000"
    for step, build in ts.TIMES.items():
        own = build()
        assert f"({own})" in targets["AT"]["expr"], step
        assert re.search(rf'step="{step}"|"step", "{step}"', own), f"step {step} must label its row {step}"
        if step != "01":  # a hop keeps its step's labels: the step's own time is its left operand
            assert ts.hop(step).startswith(f"(({own}) - on() group_left() "), step
            assert f"({ts.hop(step)})" in targets["HOP"]["expr"], step
    assert [ts.TIMES[s.label].__name__ for s in STEPS] == [s.function for s in STEPS]
    assert "{{ subf .msec .request_time }}" in ts.step_02_nginx_receives(), "step 2 = msec - request_time"
    assert "unwrap start_us" in ts.step_04_uwsgi_receives()
    assert 'event="request.finished"' in ts.step_05_uwsgi_hands_to_flask() and \
        "unwrap start_us" in ts.step_05_uwsgi_hands_to_flask(), "step 5: start_us of the wide event"
    assert "unwrap db_start_us" in ts.step_06_flask_works() and "request.started" not in ts.step_06_flask_works(), \
        "step 6: db_start_us"
    assert "db.query" not in targets["AT"]["expr"] + targets["HOP"]["expr"], "the fine events are not every request's"
    assert 'event="request.finished"' in ts.step_07_flask_responds()
    assert "addf .start_us .duration_us" in ts.step_09_uwsgi_translates(), "step 9 = start_us + duration_us"
    assert "unwrap msec" in ts.step_11_nginx_sends(), "step 11 = msec"
    assert "requestStart" in ts.step_01_client_sends() and "responseEnd" in ts.step_12_client_receives()
    for row in ts.ROWS.values():
        assert row.source in ("measured", "derived")
        assert "{{" not in re.sub(r"\{\{ \.\w+ \}\}", "", row.detail), "details use {{ .field }} only"

    transforms = [t["id"] for t in table["transformations"]]
    assert transforms == ["merge", "organize", "sortBy"], transforms
    organize = table["transformations"][1]["options"]
    assert organize["renameByName"] == {"Value #AT": "at (ms)", "Value #HOP": "hop (ms)"}
    texts = [p for p in all_panels(dashboards["request-trace.json"]) if p["type"] == "text"]
    assert any(all(w in p["options"]["content"] for w in ("measured", "derived", "missing", "never invented"))
               for p in texts), "a text panel must say what measured, derived and a missing row mean"


def test_request_trace_waterfall(dashboards):
    """The steps as a bar chart on one time axis, above the table: the same AT and HOP
    queries, each bar stacked on a transparent 'from' = AT - HOP (when the previous step was)."""
    dash = dashboards["request-trace.json"]
    chart, table = panel_titled(dash, "Waterfall"), panel_titled(dash, "Twelve steps")
    assert chart["type"] == "barchart" and chart["gridPos"]["y"] <= 4
    assert table["gridPos"]["y"] == chart["gridPos"]["y"] + chart["gridPos"]["h"], "the table right below the chart"
    assert chart["targets"] == table["targets"]
    options = chart["options"]
    assert (options["orientation"], options["stacking"], options["xField"]) == ("horizontal", "normal", "name")
    assert [t["id"] for t in chart["transformations"]] == ["merge", "organize", "calculateField", "sortBy", "organize"]
    # from = the row's diff (last - first) of HOP then AT, a missing hop as 0 (rendered in dashboards.test.mjs)
    assert chart["transformations"][1]["options"]["indexByName"] == {"Value #HOP": 0, "Value #AT": 1}
    calc = chart["transformations"][2]["options"]
    assert calc["mode"] == "reduceRow" and calc["alias"] == "from (ms)"
    assert calc["reduce"] == {"include": ["Value #HOP", "Value #AT"], "reducer": "diff", "nullValueMode": "null as zero"}
    (transparent,) = chart["fieldConfig"]["overrides"]
    assert transparent["matcher"]["options"] == "from (ms)"
    assert {"id": "color", "value": {"mode": "fixed", "fixedColor": "transparent"}} in transparent["properties"]
    assert chart["fieldConfig"]["defaults"]["unit"] == "ms"


def test_request_trace_shows_the_kept_detail(dashboards):
    dash = dashboards["request-trace.json"]
    (expr,) = [t["expr"] for t in panel_titled(dash, "Kept detail")["targets"]]
    assert expr.startswith(ts.sel("app") + " | json ")
    events = re.search(r'\| event=~"([^"]+)"$', expr).group(1).split("|")
    assert set(events) >= {"request.started", "db.query", "template.rendered", "listing.parsed",
                           "components.retrieved", "log.record"}
    for field in ("sql", "rows", "duration_ms", "start_us", "template", "record_level", "message", "detail"):
        assert field in generator.DETAIL_FIELDS and field in expr
    (why,) = [t["expr"] for t in panel_titled(dash, "Why detail was kept")["targets"]]
    assert 'event="request.finished"' in why and 'detail=~"error|slow|sampled"' in why
    assert panel_titled(dash, "Why detail was kept")["options"]["textMode"] == "name"
    kept = panel_titled(dash, "Kept detail")["gridPos"]
    assert kept["y"] >= panel_titled(dash, "Twelve steps")["gridPos"]["y"], "the detail lines beneath the steps"


def test_overview_variables_for_instance_route_and_status(dashboards):
    variables = {v["name"]: v for v in dashboards["stack-overview.json"]["templating"]["list"]}
    assert set(variables) >= {"env", "instance", "route", "status", "slow_ms"}
    assert variables["instance"]["query"]["label"] == "instance" and variables["instance"]["type"] == "query"
    assert variables["status"]["allValue"] == ".*"
    assert [o["value"] for o in variables["status"]["options"]] == ["2..", "3..", "4..", "429", "5.."]
    for value in ("200", "302", "404", "429", "503"):
        assert sum(bool(re.fullmatch(o["value"], value)) for o in variables["status"]["options"]) >= 1, value


def test_overview_slow_and_failed_requests_link_to_their_traces(dashboards):
    dash = dashboards["stack-overview.json"]
    table = panel_titled(dash, "Slow and failed requests")
    targets = {t["refId"]: t["expr"] for t in table["targets"]}
    assert set(targets) == {"DURATION", "STARTED"}
    for expr in targets.values():
        assert 'event="request.finished"' in expr and f"| {generator.WORTH_A_LOOK} |" in expr
        assert generator.WORTH_A_LOOK == 'status >= 500 or duration_ms >= $slow_ms or detail=~"error|slow|sampled"'
        for var in ("$instance", "$route", "$status", "$env"):
            assert var in expr
        assert "by (request_id, instance, method, route, status, detail, detail_kept)" in expr
    assert targets["STARTED"].endswith(f"and {targets['DURATION']}"), "the same requests in both columns"
    (link,) = [o for o in table["fieldConfig"]["overrides"] if o["matcher"]["options"] == "request_id"]
    url = link["properties"][0]["value"][0]["url"]
    assert url.startswith("/d/request-trace?var-request_id=${__value.raw}&time=${__data.fields.started.numeric}")


def test_overview_browser_timings_429s_and_shipper_drops(dashboards):
    dash = dashboards["stack-overview.json"]
    timings = [t["expr"] for t in panel_titled(dash, "Browser timings")["targets"]]
    assert all('layer="browser"' in e and 'event="browser.timing"' in e and "by (kind)" in e for e in timings)
    assert any("subf .responseEnd .requestStart" in e for e in timings)
    assert any("subf .loadEventEnd .responseEnd" in e for e in timings)
    (too_many,) = [t["expr"] for t in panel_titled(dash, "429 Too Many Requests")["targets"]]
    assert 'layer="nginx"' in too_many and '| status="429"' in too_many and "by (path)" in too_many
    drops = [t["expr"] for t in panel_titled(dash, "Lines the app's shipper dropped")["targets"]]
    assert len(drops) == len(generator.DROP_REASONS)
    for reason, expr in zip(generator.DROP_REASONS, drops):
        assert f'n="dropped.{reason}"' in expr and 'event="loki.report"' in expr and "unwrap n" in expr


def test_fixtures_carry_the_labels_the_queries_set():
    """The Loki answers the node tests use (tests/logql/fixtures/loki) match the queries:
    every series has the row labels of one of its step's variants, its detail rendered
    from that variant's template."""
    checked = 0
    for path in sorted((LOGQL_DIR / "fixtures/loki").glob("*.json")):
        responses = json.loads(path.read_text())["responses"]
        for column in [c for c in ("AT", "HOP") if c in responses]:
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
    assert "upstream_connect_time" not in ts.step_10_uwsgi_sends()
    connects = re.search(r'upstream_connect_time=~"([^"]+)"', ts.step_03_nginx_picks_upstream()).group(1)
    for value, ok in (("0.000", True), ("-, 0.000", True), ("0.001, 0.000", True), ("-", False), ("-, -", False)):
        assert bool(re.fullmatch(connects, value)) is ok, value
    responses = re.search(r'upstream_response_time=~"([^"]+)"', ts.step_10_uwsgi_sends()).group(1)
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
    for fname, dash in dashboards.items():
        for panel in all_panels(dash):
            for t in panel.get("targets", []):
                keys = PROMETHEUS_TARGET_KEYS if fname in PROMETHEUS_DASHBOARDS else LOKI_TARGET_KEYS
                assert set(t) <= keys, (panel["title"], set(t) - keys)


# ------------------------------------------------------- Grafana's own code


def test_committed_dashboards_are_the_generators_output():
    res = subprocess.run([sys.executable, "-m", GENERATOR, "--check"], capture_output=True, text=True, cwd=REPO_ROOT)
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
    assert len(results) == 3
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
    # ... and in the waterfall: a misspelt bar-chart field option, an unknown orientation, a wrong calculation mode
    trace = load_dashboards()["request-trace.json"]
    chart = next(p for p in trace["panels"] if p["type"] == "barchart")
    chart["fieldConfig"]["defaults"]["custom"]["fillOpacty"] = 80
    chart["options"]["orientation"] = "sideways"
    next(t for t in chart["transformations"] if t["id"] == "calculateField")["options"]["mode"] = "reduceRows"
    broken.write_text(json.dumps(trace))
    (result,) = run_schema_check([broken])
    errors = "\n".join(result["errors"])
    for word in ("fillOpacty", '"sideways"', '"reduceRows"'):
        assert word in errors, f"{word} not reported:\n{errors}"


def test_tables_render_as_designed_with_grafanas_code():
    """tests/logql/dashboards.test.mjs under node's test runner: Grafana's Loki frames and
    transformations on real requests' answers, with the pre-issue-14 panel as negative control."""
    node = require_tool("node")
    require_tool("lezer-logql")
    definition = subprocess.run([sys.executable, "-m", "stackctl.trace", "--json"], capture_output=True,
                                text=True, check=True).stdout
    res = subprocess.run([node, "--test", str(NODE_SUITE)], capture_output=True, text=True, cwd=LOGQL_DIR,
                         timeout=300, env={**os.environ, "TWELVE_STEPS_JSON": definition})
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


# ------------------------------------------------------- SLOs and alerts (Prometheus)


def test_slo_dashboard_reads_the_provisioned_prometheus(dashboards):
    (source,) = yaml.safe_load(PROMETHEUS_DATASOURCE.read_text())["datasources"]
    assert (source["uid"], source["type"], source["url"]) == ("prometheus", "prometheus", "http://prometheus:9090")
    want = {"type": "prometheus", "uid": source["uid"]}
    dash = dashboards["slo-alerts.json"]
    panels = all_panels(dash)
    assert panels
    for panel in panels:
        assert panel["datasource"] == want and panel["targets"], panel["title"]
        assert all(t["datasource"] == want for t in panel["targets"]), panel["title"]


def test_slo_dashboard_queries_parse_with_the_real_prometheus_parser(tmp_path):
    targets = prometheus_targets()
    assert len(targets) >= 8
    errors = parse_promql([t.expr for t in targets], tmp_path)
    assert [(t.where, e) for t, e in zip(targets, errors) if e] == []
    # negative control: the parser flags a broken query
    assert parse_promql(['sum(rate(x[5m])', 'ALERTS{alertstate="firing"'], tmp_path) != [None, None]
    assert all(parse_promql(['sum(rate(x[5m])', 'ALERTS{alertstate="firing"'], tmp_path))


def test_slo_dashboard_reads_the_series_the_rules_record():
    """Every series a panel asks for is one the project's rules record, or Prometheus's own."""
    recorded = {rule["record"] for f in (REPO_ROOT / "observability/prometheus/rules").glob("*.yaml.template")
                for group in yaml.safe_load(f.read_text())["groups"] for rule in group["rules"] if "record" in rule}
    for t in prometheus_targets():
        # recording rules' names have colons; ALERTS is Prometheus's own
        series = set(re.findall(r"\bALERTS\b|[a-zA-Z_]\w*(?::\w+)+", re.sub(r"\{[^}]*\}", " ", t.expr)))
        assert series and series <= recorded | {"ALERTS"}, (t.where, series - recorded)
    budget = next(t.expr for t in prometheus_targets() if "objective" in t.expr)
    assert set(re.findall(r"[a-zA-Z_]\w*(?::\w+)+", budget)) == {
        "pcbuilder:slo_availability:error_ratio", "pcbuilder:slo_availability:objective"}


def test_every_slo_panel_links_to_the_overview_and_the_trace_on_the_same_time(dashboards):
    dash = dashboards["slo-alerts.json"]
    for panel in all_panels(dash):
        urls = [link["url"] for link in panel["links"]]
        assert urls == ["/d/stack-overview?${__url_time_range}", "/d/request-trace?${__url_time_range}"], panel["title"]
    assert {link["url"] for link in dash["links"]} == {"/d/stack-overview", "/d/request-trace"}
    assert all(link["keepTime"] for link in dash["links"])


def test_the_alerts_link_to_this_dashboard():
    """The alerts' `dashboard` annotations open it by its uid."""
    text = "".join(f.read_text() for f in (REPO_ROOT / "observability/prometheus/rules").glob("*.yaml.template"))
    assert "/d/slo-alerts/" in text


def test_slo_panels_show_budgets_burn_rates_and_alerts(dashboards):
    panels = {p["title"]: p for p in all_panels(dashboards["slo-alerts.json"])}
    exprs = {title: p["targets"][0]["expr"] for title, p in panels.items()}
    for slo in ("Availability", "Latency"):
        assert exprs[f"{slo}: error budget left (30 days)"].startswith("1 - ")
        assert 'window="30d"' in exprs[f"{slo}: error budget left (30 days)"]
        burn = panels[f"{slo}: burn rate by window"]
        assert burn["targets"][0]["legendFormat"] == "{{window}}"
        assert [s["value"] for s in burn["fieldConfig"]["defaults"]["thresholds"]["steps"][1:]] == [1, 6, 14.4]
    assert exprs["Alerts firing or pending now"] == "ALERTS"
    assert panels["Alerts firing or pending now"]["targets"][0]["format"] == "table"
    assert 'alertname!="Watchdog"' in exprs["Alerts firing"]
