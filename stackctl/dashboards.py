"""Writes the provisioned dashboards (observability/grafana/dashboards/*.json; the SLOs and
alerts one is built in stackctl/slo_dashboard.py).

The JSON files are what Grafana provisions and stay in the repo; this module is where
they are edited: the twelve-steps queries are long compositions of the per-step LogQL
(``stackctl/trace/logql.py``, named as the steps of ``stackctl/trace/steps.py``), kept
correct here once rather than copied by hand. ``--check`` exits 1 when a committed file
differs from what this writes (tests/validators/test_dashboards.py runs it).

    python3 -m stackctl.dashboards [--check]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .trace import logql as ts

OUT = Path(__file__).resolve().parent.parent / "observability/grafana/dashboards"
LOKI = {"type": "loki", "uid": "loki"}
SCHEMA_VERSION = 39
TRACE_LINK = "/d/request-trace?var-request_id=${__value.raw}&time=${__value.time}&time.window=3600000"
#: Fields the log tables parse from the line. Never layer, instance, request_id, method,
#: status or path: those are already stream labels or structured metadata, and parsing
#: them again makes Loki add duplicate ``*_extracted`` columns.
STEP_FIELDS = ("event", "level", "uri", "route", "request_time", "upstream_addr", "upstream_response_time",
               "duration_us", "duration_ms", "db_queries", "db_ms", "db_rows", "components", "sql", "rows",
               "count", "bytes_sent", "size", "bytes", "msg", "error", "traceback")
ERROR_FIELDS = ("event", "level", "uri", "route", "msg", "error")
#: uWSGI's own messages carry no level; these words mark its failures (worker deaths,
#: harakiri, segfaults, write errors, a full listen queue, an app that failed to load).
UWSGI_ERRORS = ("(?i).*(error|fail|harakiri|segmentation|died|damn|traceback|exception|unable to|cannot"
                "|no app loaded|queue .* full|broken pipe).*")
#: ...except two notices every healthy start of this stack's uWSGI prints (harakiri is set;
#: the touch-logreopen file exists only once a rotation made it).
UWSGI_START_NOTICES = "(?i).*(harakiri without post buffering|reopen, events will be triggered as soon as).*"
#: What the error panels show: 5xx at any layer, failed logins at the edge (401), app
#: failures and error records, uWSGI's own failure messages.
ERROR_FILTER = (f'status >= 500 or (layer="nginx" and status == 401) or event="request.failed" '
                f'or level=~"(?i)(error|critical)" or (event="uwsgi.server" and msg=~"{UWSGI_ERRORS}"'
                f' and msg!~"{UWSGI_START_NOTICES}")')
REQUEST_EVENTS = 'event=~"nginx.access|uwsgi.request|request.finished"'


# --- building blocks -----------------------------------------------------------------------

def target(ref: str, expr: str, query_type: str = "range", **extra) -> dict:
    return {"refId": ref, "datasource": LOKI, "editorMode": "code", "expr": expr, "queryType": query_type,
            **extra}


def panel(pid: int, kind: str, title: str, description: str, grid: tuple[int, int, int, int],
          targets: list[dict], **extra) -> dict:
    x, y, w, h = grid
    return {"id": pid, "type": kind, "title": title, "description": description, "datasource": LOKI,
            "gridPos": {"x": x, "y": y, "w": w, "h": h}, "targets": targets, **extra}


def override(name: str, **props) -> dict:
    return {"matcher": {"id": "byName", "options": name},
            "properties": [{"id": k.replace("__", "."), "value": v} for k, v in props.items()]}


def stat(pid: int, title: str, description: str, grid, expr: str, unit: str, decimals: int,
         no_value: str = "—", color: str = "blue") -> dict:
    return panel(pid, "stat", title, description, grid, [target("A", expr, "instant")],
                 fieldConfig={"defaults": {"unit": unit, "decimals": decimals, "noValue": no_value,
                                           "color": {"mode": "fixed", "fixedColor": color}},
                              "overrides": []},
                 options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                          "colorMode": "value", "graphMode": "none", "textMode": "value",
                          "justifyMode": "auto", "orientation": "auto", "showPercentChange": False,
                          "percentChangeColorMode": "standard", "wideLayout": True})


def timeseries(pid: int, title: str, description: str, grid, targets: list[dict], unit: str,
               legend: dict, custom: dict | None = None, **defaults) -> dict:
    return panel(pid, "timeseries", title, description, grid, targets,
                 fieldConfig={"defaults": {"unit": unit, **defaults,
                                           "custom": {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10,
                                                      "showPoints": "never", "spanNulls": False, **(custom or {})}},
                              "overrides": []},
                 options={"legend": {"showLegend": True, "calcs": [], **legend},
                          "tooltip": {"mode": "multi", "sort": "desc"}})


def log_table_transformations(index: list[str], exclude: list[str]) -> list[dict]:
    """Loki log frames keep labels, metadata and parsed fields in one ``labels`` column:
    extract them into columns, then keep the readable ones in a fixed order."""
    return [
        {"id": "extractFields", "options": {"source": "labels", "format": "auto", "replace": False,
                                            "keepTime": False}},
        {"id": "organize", "options": {"excludeByName": {n: True for n in exclude},
                                       "indexByName": {n: i for i, n in enumerate(index)},
                                       "renameByName": {}, "includeByName": {}}},
    ]


def logs_options(order: str, show_labels: bool) -> dict:
    return {"showTime": True, "wrapLogMessage": True, "enableLogDetails": True, "showLabels": show_labels,
            "showCommonLabels": False, "showLogContextToggle": False, "sortOrder": order, "dedupStrategy": "none",
            "prettifyLogMessage": False}


LOG_FRAME_FIELDS = ["labels", "tsNs", "id", "Line", "labelTypes", "detected_level", "service_name", "env"]


def dashboard(uid: str, title: str, description: str, tags: list[str], time_from: str, refresh: str,
              links: list[dict], variables: list[dict], panels: list[dict]) -> dict:
    return {"uid": uid, "title": title, "description": description, "tags": tags, "editable": False,
            "graphTooltip": 1, "schemaVersion": SCHEMA_VERSION, "version": 1,
            "time": {"from": time_from, "to": "now"}, "timezone": "browser", "refresh": refresh,
            "fiscalYearStartMonth": 0, "liveNow": False, "links": links,
            "templating": {"list": variables}, "annotations": {"list": []}, "panels": panels}


def link(title: str, url: str, icon: str, tooltip: str) -> dict:
    return {"title": title, "type": "link", "url": url, "icon": icon, "keepTime": True, "targetBlank": False,
            "tooltip": tooltip, "asDropdown": False, "includeVars": False, "tags": []}


# --- request trace -----------------------------------------------------------------------------

HINT = "Paste a request id into request_id above"
TRACE_TEXT = """\
**Paste a request id into `request_id` above**: the `X-Request-ID` response header (browser dev tools, \
Network tab), or click one in the overview's *Recent errors* or *Slow and failed requests*. With no id \
every panel stays empty.

**The twelve steps of request `$request_id`**, derived as `./stack trace <id>` derives them \
(one function per step in stackctl/trace/derivation.py, the same step in LogQL in stackctl/trace/logql.py).

- **Waterfall**: one bar per step, from the previous step to this one, on one axis in ms after the \
request's first step: the longest bar is where the time went.
- **at (ms)**: when the step happened, after the first step. NGINX, uWSGI and Flask share the host clock and \
are compared as they are; NGINX times are whole milliseconds, uWSGI's and the app's microseconds. The \
browser's clock is aligned on NGINX's (see *Browser clock skew*).
- **hop (ms)**: this step's time minus the previous step's (step 11 falls back to step 3 when NGINX \
answered itself). Step 6's `detail` carries the request's database work (`db_queries`, `db_ms`, \
`db_rows` of `request.finished`). A negative hop next to an NGINX step (seen down to about -1.3 ms) comes from NGINX's \
clock: its times are whole milliseconds, truncated, from a clock NGINX updates once per pass of its event \
loop, so an NGINX time can be a little more than 1 ms early against uWSGI's microseconds. It is shown as \
computed.
- **measured**: a clock reading that a layer logged as is: NGINX `msec` (11), uWSGI `start_us` (4), the \
app's wide event `request.finished`: `start_us` (5), `db_start_us` (6, when the request queried the \
database) and `time` (7), the browser's `requestStart` (1) and `responseEnd` (12) (Navigation Timing of a \
page, Resource Timing of a `fetch`).
- **derived**: computed from measured numbers: 2 = `msec - request_time`; 3 = step 2 + \
`upstream_connect_time` (after the earlier attempts when NGINX retried, up to 3 attempts: `detail` lists \
every upstream tried); 6 = step 5 when the request made no database query; 8 = step 7 (the body does not \
stream); 9 = `start_us + duration_us`, bounded by step 10 (never before step 8) when uWSGI logged its end \
after NGINX had already sent the response; 10 = step 2 + `upstream_response_time` (also when a failed \
connection left `upstream_connect_time` at `-`).
- **A missing row means the logs do not carry that step** for this id; it is never invented. A response \
NGINX gave itself (a static file, 401, 404, 429) has no steps 4-10; a 502 whose upstream connection \
failed has no steps 3-9; steps 1 and 12 need the browser's beacon (`browser.timing`), which page views and \
the pages' `fetch` calls send.
- **Kept detail**: the app's fine events (each query, the template render, stdlib records) are written for \
a request that failed, was slow or was sampled (*Why detail was kept*), and for every request at \
`LOG_LEVEL=DEBUG`; the table under the steps lists them.
"""
#: The fine events the app writes for a request whose detail it kept (and at DEBUG).
DETAIL_EVENTS = ("request.started", "db.query", "db.slow_query", "template.rendered", "listing.parsed",
                 "components.retrieved", "log.record")
DETAIL_FIELDS = ("event", "detail", "duration_ms", "start_us", "sql", "rows", "template", "count", "record_level",
                 "logger", "message")


def step_targets() -> list[dict]:
    """The twelve steps' two instant queries, shared by the waterfall and the table."""
    return [target("AT", ts.at_query(), "instant"), target("HOP", ts.hop_query(), "instant")]


def waterfall_panel() -> dict:
    """The twelve steps as bars on one time axis: each from the previous step to this one.

    A horizontal bar chart of two stacked fields per step: ``from (ms)``, drawn transparent
    (when the previous step happened), then ``hop (ms)`` (the time to this step)."""
    return panel(
        11, "barchart", "Waterfall: the twelve steps on one time axis (ms after the first step)",
        "Each step's bar runs from the previous step to this one: the longest bar is where the time went. "
        "Two instant queries, AT (each step's time in ms after the request's first step) and HOP (the time "
        "since the previous step); 'from' = AT - HOP (when the previous step happened) is drawn transparent. "
        "./stack trace draws the same.",
        (0, 4, 17, 12), step_targets(),
        fieldConfig={"defaults": {"unit": "ms", "decimals": 3, "min": 0, "color": {"mode": "fixed", "fixedColor": "blue"},
                                  "custom": {"fillOpacity": 80, "lineWidth": 0, "gradientMode": "none",
                                             "axisPlacement": "auto", "axisLabel": "ms after the first step",
                                             "hideFrom": {"legend": False, "tooltip": False, "viz": False}}},
                     "overrides": [override("from (ms)", color={"mode": "fixed", "fixedColor": "transparent"},
                                            custom__hideFrom={"legend": True, "tooltip": False, "viz": False})]},
        options={"orientation": "horizontal", "stacking": "normal", "xField": "name", "showValue": "never",
                 "barWidth": 0.8, "groupWidth": 0.7, "fullHighlight": False, "xTickLabelMaxLength": 40,
                 "xTickLabelRotation": 0, "legend": {"showLegend": False, "displayMode": "list",
                                                     "placement": "bottom", "calcs": []},
                 "tooltip": {"mode": "multi", "sort": "none"}},
        transformations=[
            {"id": "merge", "options": {}},
            # from = AT - HOP, a missing hop (the first step, or a step after a missing one)
            # counting as 0: the row's "diff" (last - first, nulls as zero) of HOP then AT.
            {"id": "organize", "options": {"excludeByName": {}, "indexByName": {"Value #HOP": 0, "Value #AT": 1},
                                           "renameByName": {}, "includeByName": {}}},
            {"id": "calculateField", "options": {
                "mode": "reduceRow", "alias": "from (ms)", "replaceFields": False,
                "reduce": {"include": ["Value #HOP", "Value #AT"], "reducer": "diff", "nullValueMode": "null as zero"}}},
            {"id": "sortBy", "options": {"sort": [{"field": "step", "desc": False}]}},
            {"id": "organize", "options": {
                "excludeByName": {n: True for n in ("Time", "step", "layer", "source", "detail", "Value #AT")},
                "indexByName": {"name": 0, "from (ms)": 1, "Value #HOP": 2},
                "renameByName": {"Value #HOP": "hop (ms)"}, "includeByName": {}}},
        ])


def twelve_steps_panel() -> dict:
    widths = {"step": 60, "name": 270, "layer": 90, "at (ms)": 100, "hop (ms)": 100, "source": 90}
    overrides = [override(n, custom__width=w) for n, w in widths.items() if n not in ("at (ms)", "hop (ms)")]
    overrides += [
        override("at (ms)", unit="none", decimals=3, custom__width=widths["at (ms)"]),
        override("hop (ms)", unit="none", decimals=3, custom__width=widths["hop (ms)"]),
        override("detail", custom__inspect=True),
    ]
    return panel(
        7, "table", "Twelve steps",
        "One row per step of the request, as far as its log lines carry it (./stack trace derives the same). "
        "Two instant queries over the dashboard range, one per column: AT (each step's time in ms after the "
        "request's first step) and HOP (each step's time minus the previous step's); every row carries the "
        "labels step, name, layer, source and detail, and the merge joins the two columns on them. See the "
        "panel beside for measured vs derived.",
        (0, 16, 17, 12), step_targets(),
        fieldConfig={"defaults": {"noValue": "—", "custom": {"align": "auto", "cellOptions": {"type": "auto"},
                                                             "inspect": False}},
                     "overrides": overrides},
        options={"showHeader": True, "cellHeight": "sm", "frameIndex": 0},
        transformations=[
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {
                "excludeByName": {"Time": True},
                "indexByName": {"step": 0, "name": 1, "layer": 2, "Value #AT": 3, "Value #HOP": 4,
                                "source": 5, "detail": 6},
                "renameByName": {"Value #AT": "at (ms)", "Value #HOP": "hop (ms)"},
                "includeByName": {}}},
            {"id": "sortBy", "options": {"sort": [{"field": "step", "desc": False}]}},
        ])


def kept_detail_panels(y: int) -> list[dict]:
    """Why the app kept this request's fine events, and the events (each query, the render)."""
    app = ts.sel("app")
    why = panel(12, "stat", "Why detail was kept",
                "request.finished's detail: error (5xx or an unhandled exception), slow (LOG_DETAIL_SLOW_MS) or "
                "sampled (LOG_DETAIL_SAMPLE). No value: the app wrote no fine events for this request (or it "
                "ran at LOG_LEVEL=DEBUG, which writes them for every request without a reason).",
                (17, 18, 7, 4),
                [target("A", f'sum by (detail) (count_over_time({app} | json event, detail | event="request.finished" '
                             f'| detail=~"error|slow|sampled" [$__range]))', "instant", legendFormat="{{detail}}")],
                fieldConfig={"defaults": {"noValue": "— (not kept)", "color": {"mode": "fixed", "fixedColor": "orange"}},
                             "overrides": []},
                options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                         "colorMode": "value", "graphMode": "none", "textMode": "name", "justifyMode": "auto",
                         "orientation": "auto", "showPercentChange": False, "percentChangeColorMode": "standard",
                         "wideLayout": True})
    events = "|".join(DETAIL_EVENTS)
    table = panel(13, "table", "Kept detail: the app's fine events (steps 5-7)",
                  "The app's fine events of this request in time order: each database query (statement shape, "
                  "rows, duration, start), the template render, what the listing parser decided, stdlib log "
                  "records. Written when detail was kept (each line has detail=true) or at LOG_LEVEL=DEBUG.",
                  (0, y, 24, 8),
                  [target("A", f'{app} | json {", ".join(DETAIL_FIELDS)} | event=~"{events}"', maxLines=1000)],
                  fieldConfig={"defaults": {}, "overrides": [override("sql", custom__inspect=True),
                                                             override("message", custom__inspect=True)]},
                  options={"showHeader": True, "cellHeight": "sm", "frameIndex": 0,
                           "sortBy": [{"displayName": "Time", "desc": False}]},
                  transformations=log_table_transformations(["Time", "instance", *DETAIL_FIELDS],
                                                            LOG_FRAME_FIELDS + ["request_id", "layer"]))
    return [why, table]


def request_trace() -> dict:
    rid = ts.RID
    steps_fields = ", ".join(STEP_FIELDS)
    panels = [
        stat(10, "Log lines for this request id",
             "How many lines of all layers carry this request_id in the dashboard's time range.", (0, 0, 4, 4),
             f'sum(count_over_time({{service_name="pc-builder"}} {rid} [$__range]))', "short", 0,
             no_value=HINT, color="green"),
        stat(1, "NGINX request_time", "Total time at NGINX, including the upstream.", (4, 0, 5, 4),
             f"max_over_time({ts.sel('nginx')} | json request_time | unwrap request_time | __error__=\"\" "
             "[$__range]) by (layer)", "s", 3),
        stat(2, "NGINX upstream_response_time",
             "Time the uWSGI upstream took as seen by NGINX (the first attempt's when NGINX retried).",
             (9, 0, 5, 4),
             f"max_over_time({ts.sel('nginx')} | json upstream_response_time | line_format "
             "\"{{ .upstream_response_time }}\" | regexp \"^(?P<first_response>[0-9.]+)\" | unwrap first_response "
             "| __error__=\"\" [$__range]) by (layer)",
             "s", 3),
        stat(3, "uWSGI duration", "Time spent inside uWSGI (duration_us of the uWSGI request line).",
             (14, 0, 5, 4),
             f"max_over_time({ts.sel('uwsgi')} | json event, duration_us | event=\"uwsgi.request\" "
             "| unwrap duration_us | __error__=\"\" [$__range]) by (layer)", "µs", 0),
        stat(4, "App duration", "Time spent in Flask (duration_ms of the wide event request.finished).",
             (19, 0, 5, 4),
             f"max_over_time({ts.sel('app')} | json event, duration_ms | event=\"request.finished\" "
             "| unwrap duration_ms | __error__=\"\" [$__range]) by (layer)", "ms", 3),
        waterfall_panel(),
        twelve_steps_panel(),
        {"id": 8, "type": "text", "title": "Twelve steps: measured, derived, missing",
         "description": "How to read the waterfall and the Twelve steps table.",
         "gridPos": {"x": 17, "y": 4, "w": 7, "h": 10},
         "options": {"mode": "markdown", "content": TRACE_TEXT,
                     "code": {"language": "plaintext", "showLineNumbers": False, "showMiniMap": False}}},
        stat(9, "Browser clock skew",
             "Browser clock minus NGINX's, subtracted from steps 1 and 12 (as ./stack trace does): 0 when the "
             "beacon's raw requestStart..responseEnd already brackets NGINX's received..sent, else the "
             "NTP-style offset that centres the browser's window on NGINX's. No value: no browser.timing "
             "beacon for this id.", (17, 14, 7, 4), f"{ts.skew_s()} * 1000", "ms", 3,
             no_value="— (no beacon)", color="purple"),
        *kept_detail_panels(28),
        panel(5, "table", "Request steps (all layers, in time order)",
              "Every log line carrying this request_id with the fields that tell its story: NGINX access, uWSGI "
              "request, the app's wide event request.finished (and request.failed, db.slow_query, and the fine "
              "events when detail was kept), the browser beacon.",
              (0, 36, 24, 10),
              [target("A", f'{{service_name="pc-builder"}} {rid} | json {steps_fields}', maxLines=1000)],
              fieldConfig={"defaults": {}, "overrides": [override("traceback", custom__inspect=True)]},
              options={"showHeader": True, "cellHeight": "sm", "frameIndex": 0,
                       "sortBy": [{"displayName": "Time", "desc": False}]},
              transformations=log_table_transformations(
                  ["Time", "layer", "instance", "event", "level", "method", "uri", "path", "route", "status",
                   *[f for f in STEP_FIELDS if f not in ("event", "level", "uri", "route")]],
                  LOG_FRAME_FIELDS + ["request_id"])),
        panel(6, "logs", "Log lines for request $request_id (oldest first)",
              "All layers, filtered on the request_id structured metadata (not a label).", (0, 46, 24, 14),
              [target("A", f'{{service_name="pc-builder"}} {rid}', maxLines=1000)],
              options=logs_options("Ascending", show_labels=True)),
    ]
    variable = {"name": "request_id", "label": "request_id", "type": "textbox", "query": "",
                "current": {"selected": False, "text": "", "value": ""}, "hide": 0,
                "description": "The X-Request-ID of the request to follow"}
    return dashboard("request-trace", "PC Builder / Request trace",
                     "Follow one request_id through the browser, NGINX, uWSGI and the Flask app: its twelve steps "
                     "as a waterfall, the app's kept detail, then every log line.", ["pc-builder", "trace"],
                     "now-6h", "", [link("Stack overview", "/d/stack-overview", "dashboard", "Back to the overview")],
                     [variable], panels)


# --- stack overview ----------------------------------------------------------------------------

def stack_overview() -> dict:
    stream = '{service_name="pc-builder", env=~"$env"}'
    nginx = '{service_name="pc-builder", env=~"$env", layer="nginx"}'
    requests = f"sum by (layer) (rate({stream} | json event | __error__=\"\" | {REQUEST_EVENTS} [$__auto]))"
    errors_5xx = (f"sum by (layer) (rate({stream} | json event, status | __error__=\"\" | {REQUEST_EVENTS} "
                  f"| status >= 500 [$__auto]))")
    latency = [target(ref, f"quantile_over_time({q}, {nginx} | json event, {field} | __error__=\"\" "
                           f"| event=\"nginx.access\"{flt} | unwrap {field} | __error__=\"\" [$__auto]) by (layer)",
                      legendFormat=f"p{q[2:].ljust(2, '0')}")
               for field, flt in (("request_time", ""),
                                  ("upstream_response_time", ' | upstream_response_time=~"[0-9.]+"'))
               for ref, q in (("A", "0.5"), ("B", "0.95"), ("C", "0.99"))]
    error_lines = (f"{stream} | json {', '.join(ERROR_FIELDS)} | __error__=\"\" | {ERROR_FILTER}")

    def slowest(pid: int, title: str, description: str, x: int, expr: str, key: str, value: str,
                unit: str) -> dict:
        return panel(pid, "table", f"Slowest {title}", description, (x, 16, 8, 8),
                     [target("A", expr, "instant")],
                     fieldConfig={"defaults": {"unit": unit, "decimals": 3}, "overrides": [override(
                         value, custom__cellOptions={"type": "color-background", "mode": "gradient"},
                         color={"mode": "continuous-GrYlRd"})]},
                     options={"showHeader": True, "frameIndex": 0, "sortBy": [{"displayName": value, "desc": True}]},
                     transformations=[{"id": "organize", "options": {
                         "excludeByName": {"Time": True}, "indexByName": {"method": 0, key: 1, "Value #A": 2},
                         "renameByName": {"Value #A": value}, "includeByName": {}}}])

    panels = [
        timeseries(1, "Requests/s by layer and status class",
                   "One request is counted once per layer: nginx access line, uWSGI request line, app "
                   "request.finished.", (0, 0, 12, 8),
                   [target("A", f"sum by (layer, status_class) (rate({stream} | json event, status | __error__=\"\" "
                                f"| {REQUEST_EVENTS} | label_format status_class=`{{{{ substr 0 1 .status }}}}xx` "
                                "[$__auto]))", legendFormat="{{layer}} {{status_class}}")],
                   "reqps", {"displayMode": "table", "placement": "right", "calcs": ["mean", "lastNotNull"]}),
        timeseries(2, "Error rate (5xx share) by layer",
                   "Share of requests answered with a 5xx status, per layer; 0 % is drawn as 0 when a layer "
                   "served requests and none failed (no line at all: no requests).", (12, 0, 12, 8),
                   [target("A", f"({errors_5xx} or (0 * {requests})) / {requests}", legendFormat="{{layer}}")],
                   "percentunit", {"displayMode": "list", "placement": "bottom"}, {"lineWidth": 2},
                   min=0, max=1, thresholds={"mode": "absolute", "steps": [{"color": "green", "value": None},
                                                                          {"color": "red", "value": 0.01}]}),
        timeseries(3, "NGINX request_time p50 / p95 / p99",
                   "Total time NGINX spent on the request ($request_time), seconds.", (0, 8, 12, 8), latency[:3],
                   "s", {"displayMode": "list", "placement": "bottom"}),
        timeseries(4, "NGINX upstream_response_time p50 / p95 / p99",
                   "Time the uWSGI upstream took as seen by NGINX, seconds. Lines that were retried on several "
                   "upstreams (comma-separated values) or never reached one (\"-\") are left out.", (12, 8, 12, 8),
                   latency[3:], "s", {"displayMode": "list", "placement": "bottom"}),
        timeseries(5, "Requests/s per uWSGI instance",
                   "Load balancing across app replicas (uWSGI request log lines per instance); the legend shows "
                   "each instance's mean, peak and last rate.", (0, 16, 8, 8),
                   [target("A", f"sum by (instance) (rate({{service_name=\"pc-builder\", env=~\"$env\", "
                                f"layer=\"uwsgi\"}} | json event | __error__=\"\" | event=\"uwsgi.request\" "
                                "[$__auto]))", legendFormat="{{instance}}")],
                   "reqps", {"displayMode": "table", "placement": "right", "calcs": ["mean", "max", "lastNotNull"]},
                   {"stacking": {"mode": "normal", "group": "A"}}),
        slowest(6, "paths (NGINX request_time)",
                "Top 10 method + path (the URI without its query string) by 95th percentile of NGINX "
                "request_time over the dashboard range: static files and NGINX's own answers included.", 8,
                f"topk(10, quantile_over_time(0.95, {nginx} | json event, uri, request_time | __error__=\"\" "
                "| event=\"nginx.access\" | label_format path=`{{ regexReplaceAll \"[?#].*\" .uri \"\" }}` "
                "| unwrap request_time | __error__=\"\" [$__range]) by (method, path))", "path", "p95 request_time", "s"),
        slowest(11, "routes (app duration_ms)",
                "Top 10 method + Flask route (the URL rule, so /components/<int:component_id> is one row) by "
                "95th percentile of the app's duration_ms over the dashboard range.", 16,
                f"topk(10, quantile_over_time(0.95, {{service_name=\"pc-builder\", env=~\"$env\", layer=\"app\"}} "
                "| json event, route, duration_ms | __error__=\"\" | event=\"request.finished\" | route=~\"/.+\" "
                "| unwrap duration_ms | __error__=\"\" [$__range]) by (method, route))", "route", "p95 duration_ms",
                "ms"),
        panel(7, "table", "Recent errors (click a request_id to trace it)",
              "5xx responses at any layer, failed logins at the edge (NGINX 401), app request.failed events "
              "and error/critical records, uWSGI's own failure messages. request_id opens the request-trace "
              "dashboard on an hour around the line.", (0, 24, 24, 10),
              [target("A", error_lines, maxLines=200)],
              fieldConfig={"defaults": {}, "overrides": [override(
                  "request_id", links=[{"title": "Trace request ${__value.raw}", "url": TRACE_LINK}])]},
              options={"showHeader": True, "cellHeight": "sm", "frameIndex": 0,
                       "sortBy": [{"displayName": "Time", "desc": True}]},
              transformations=log_table_transformations(
                  ["Time", "layer", "instance", "event", "status", "method", "uri", "path", "route", "request_id",
                   "level", "msg", "error"], LOG_FRAME_FIELDS)),
        panel(8, "logs", "Error log lines", "Raw lines behind the table above, newest first.", (0, 34, 24, 10),
              [target("A", error_lines, maxLines=200)],
              options=logs_options("Descending", show_labels=False)),
        *requests_to_look_at(44),
    ]
    env = {"name": "env", "label": "env", "type": "query", "datasource": LOKI,
           "query": {"refId": "LokiVariableQueryEditor-VariableQuery", "type": 1, "label": "env",
                     "stream": '{service_name="pc-builder"}'},
           "includeAll": True, "allValue": ".*",
           "multi": False, "current": {"selected": True, "text": "All", "value": "$__all"}, "refresh": 2,
           "sort": 1, "hide": 0}
    return dashboard("stack-overview", "PC Builder / Stack overview",
                     "Traffic, errors and latency across NGINX, uWSGI and the Flask app, from Loki.",
                     ["pc-builder", "overview"], "now-1h", "30s",
                     [link("Request trace", "/d/request-trace", "external link",
                           "Follow one request_id across layers")], [env, *overview_variables()], panels)


#: Opens the request-trace dashboard on the hour around the row's request (``started``, epoch ms).
TRACE_LINK_STARTED = ("/d/request-trace?var-request_id=${__value.raw}&time=${__data.fields.started.numeric}"
                      "&time.window=3600000")
#: What makes an app request worth a look: failed, slow, or its detail was kept.
WORTH_A_LOOK = 'status >= 500 or duration_ms >= $slow_ms or detail=~"error|slow|sampled"'
SLOW_GROUP = "request_id, instance, method, route, status, detail, detail_kept"
#: Why the app's shipper gave lines up (service/pcbuilder/loki_backlog.py).
DROP_REASONS = ("overflow", "rejected", "shutdown")


def overview_variables() -> list[dict]:
    """instance, route, status and the slow threshold, for the panels on the app's requests."""
    instance = {"name": "instance", "label": "instance", "type": "query", "datasource": LOKI,
                "query": {"refId": "LokiVariableQueryEditor-VariableQuery", "type": 1, "label": "instance",
                          "stream": '{service_name="pc-builder", layer="app"}'},
                "includeAll": True, "allValue": ".*", "multi": True,
                "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "refresh": 2, "sort": 1,
                "hide": 0, "description": "The app instance (uWSGI instance) of the requests below"}
    route = {"name": "route", "label": "route", "type": "textbox", "query": ".*",
             "current": {"selected": False, "text": ".*", "value": ".*"}, "hide": 0,
             "description": "A regular expression over the Flask route, e.g. /pc-builder-app/api/.*"}
    classes = [("2xx", "2.."), ("3xx", "3.."), ("4xx", "4.."), ("429", "429"), ("5xx", "5..")]
    status = {"name": "status", "label": "status", "type": "custom", "query": ", ".join(f"{t} : {v}" for t, v in classes),
              "options": [{"selected": False, "text": t, "value": v} for t, v in classes],
              "includeAll": True, "allValue": ".*", "multi": True,
              "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "hide": 0,
              "description": "The response status of the requests below"}
    slow = {"name": "slow_ms", "label": "slow (ms)", "type": "textbox", "query": "500",
            "current": {"selected": False, "text": "500", "value": "500"}, "hide": 0,
            "description": "A request this slow (app duration_ms) is listed; the app's LOG_DETAIL_SLOW_MS (500) "
                           "keeps its detail"}
    return [instance, route, status, slow]


def requests_to_look_at(y: int) -> list[dict]:
    """The overview's panels on single requests: slow and failed ones (linking to their
    traces), the browser's timings, NGINX's 429s and the lines the app's shipper dropped."""
    app = '{service_name="pc-builder", env=~"$env", layer="app", instance=~"$instance"}'
    pipe = (f'| json event, route, duration_ms, start_us, detail, detail_kept | event="request.finished" '
            f'| route=~"$route" | status=~"$status" | {WORTH_A_LOOK}')
    duration = (f"topk(50, max_over_time({app} {pipe} | unwrap duration_ms | __error__=\"\" [$__range]) "
                f"by ({SLOW_GROUP}))")
    started = (f"(max_over_time({app} {pipe} | unwrap start_us | __error__=\"\" [$__range]) by ({SLOW_GROUP}) "
               f"/ 1000) and {duration}")
    columns = ["started", "request_id", "instance", "method", "route", "status", "duration (ms)", "detail",
               "detail_kept"]
    slow_and_failed = panel(
        9, "table", "Slow and failed requests (click a request_id to trace it)",
        "The app's requests (request.finished) that failed (5xx), took at least slow (ms), or whose detail the "
        "app kept (detail: error, slow or sampled; detail_kept: how many fine events), the slowest 50 in the "
        "range. request_id opens the request-trace dashboard on the hour around the request.",
        (0, y, 24, 10),
        [target("DURATION", duration, "instant"), target("STARTED", started, "instant")],
        fieldConfig={"defaults": {"noValue": "—"}, "overrides": [
            override("started", unit="dateTimeAsIso", custom__width=190),
            override("duration (ms)", unit="none", decimals=3,
                     custom__cellOptions={"type": "color-background", "mode": "gradient"},
                     color={"mode": "continuous-GrYlRd"}),
            override("request_id", links=[{"title": "Trace request ${__value.raw}", "url": TRACE_LINK_STARTED}])]},
        options={"showHeader": True, "cellHeight": "sm", "frameIndex": 0,
                 "sortBy": [{"displayName": "duration (ms)", "desc": True}]},
        transformations=[
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {
                "excludeByName": {"Time": True},
                "indexByName": {("Value #STARTED" if c == "started" else "Value #DURATION" if c == "duration (ms)"
                                 else c): i for i, c in enumerate(columns)},
                "renameByName": {"Value #STARTED": "started", "Value #DURATION": "duration (ms)"},
                "includeByName": {}}},
        ])

    browser = '{service_name="pc-builder", env=~"$env", layer="browser"}'

    def timing(ref: str, q: str, field: str, since: str, legend: str) -> dict:
        return target(ref, f"quantile_over_time({q}, {browser} | json event, kind, {field}, {since} "
                           f"| event=\"browser.timing\" | label_format kind=`{{{{ or .kind \"navigation\" }}}}`, "
                           f"took=`{{{{ subf .{field} .{since} }}}}` | unwrap took | __error__=\"\" [$__auto]) "
                           "by (kind)", legendFormat=legend)

    browser_timings = timeseries(
        10, "Browser timings (real users: steps 1 to 12)",
        "From the browser's beacon (browser.timing): request sent (requestStart) to response received "
        "(responseEnd), p50 and p95, for page views and the pages' fetch calls; then the page's render after the "
        "response (DOMContentLoaded, load), p95. Milliseconds.", (0, y + 10, 12, 8),
        [timing("A", "0.5", "responseEnd", "requestStart", "{{kind}} request -> response p50"),
         timing("B", "0.95", "responseEnd", "requestStart", "{{kind}} request -> response p95"),
         timing("C", "0.95", "domContentLoadedEventEnd", "responseEnd", "{{kind}} response -> DOMContentLoaded p95"),
         timing("D", "0.95", "loadEventEnd", "responseEnd", "{{kind}} response -> load p95")],
        "ms", {"displayMode": "list", "placement": "bottom"})
    too_many = timeseries(
        14, "429 Too Many Requests by path (NGINX's rate limits)",
        "Requests NGINX refused with 429 (limit_req), per path (the URI without its query string).",
        (12, y + 10, 12, 8),
        [target("A", 'sum by (path) (count_over_time({service_name="pc-builder", env=~"$env", layer="nginx"} '
                     '| json event, uri | event="nginx.access" | status="429" '
                     '| label_format path=`{{ regexReplaceAll "[?#].*" .uri "" }}` [$__auto]))',
                legendFormat="{{path}}")],
        "short", {"displayMode": "list", "placement": "bottom"}, {"drawStyle": "bars", "fillOpacity": 60})
    dropped = timeseries(
        15, "Lines the app's shipper dropped (loki.report)",
        "Log lines the app's Loki shipper gave up, per instance and reason: overflow (its backlog was full during an "
        "outage: the oldest went), rejected (Loki refused a batch with a 4xx), shutdown (left at exit). The "
        "loki.report lines that count them are shipped too, so they arrive once Loki is back.",
        (0, y + 18, 24, 8),
        [target(reason[0].upper(), f'sum by (instance) (sum_over_time({app} | json event, n="dropped.{reason}" '
                                   f'| event="loki.report" | unwrap n | __error__="" [$__auto]))',
                legendFormat=f"{{{{instance}}}} {reason}") for reason in DROP_REASONS],
        "short", {"displayMode": "list", "placement": "bottom"}, {"drawStyle": "bars", "fillOpacity": 60})
    return [slow_and_failed, browser_timings, too_many, dropped]


def slos_and_alerts() -> dict:
    """stackctl/slo_dashboard.py, imported here when called: it builds on the blocks above."""
    from .slo_dashboard import slos_and_alerts as build
    return build()


DASHBOARDS = {"request-trace.json": request_trace, "stack-overview.json": stack_overview,
              "slo-alerts.json": slos_and_alerts}


def render(build) -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    check = argv[1:] == ["--check"]
    stale = []
    for name, build in DASHBOARDS.items():
        path, text = OUT / name, render(build)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"stackctl.dashboards: {', '.join(stale)} differ from what it writes; "
              "run python3 -m stackctl.dashboards and commit the result", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
