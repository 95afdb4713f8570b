"""The twelve steps in LogQL, one function per step, for the request-trace dashboard.

``step_NN_<key>()`` is step NN's time as an instant query over the dashboard range: at most
one series labelled ``step, name, layer, source, detail`` (the names and layers of
``steps.STEPS``), valued in epoch seconds. It mirrors ``derivation.step_NN_<key>`` (same
name, same fields); steps 5 and 6 come from the app's wide event ``request.finished``
(``start_us``, ``db_start_us``). The panels run instant queries built from them: AT (each
step's time in ms after the request's first step), HOP (each step's time minus the
previous step's, in ms). Grafana's Loki datasource makes one table frame of each query (a
column per label, ``Value #AT`` / ``Value #HOP``) and the panels' ``merge`` joins them on
the label columns, one row per step.

Every selector filters ``request_id!=""`` first: with no id pasted, nothing matches
(``request_id=""`` alone would match every line without an id).
"""
from __future__ import annotations

from dataclasses import dataclass

from .steps import BY_NUMBER, STEPS

#: Labels every row carries; the panel's merge joins TIME and HOP rows on them.
ROW_LABELS = ("step", "name", "layer", "source", "detail")
BY = f"by ({', '.join(ROW_LABELS)})"
RID = '| request_id!="" | request_id="$request_id"'
ERR = '| __error__=""'
RANGE = "[$__range]"
#: NGINX writes up to three attempts per upstream field ("0.001, 0.074"; " : " between groups).
SEP = " *[,:] +"
RESPONSES = f'"^(?P<r1>[0-9.]+)(?:{SEP}(?P<r2>[0-9.]+))?(?:{SEP}(?P<r3>[0-9.]+))?$"'
# A failed connection is "-"; only the last attempt's connect time must be a number.
CONNECTS = f'"^(?P<c1>[-0-9.]+)(?:{SEP}(?P<c2>[-0-9.]+))?(?:{SEP}(?P<c3>[-0-9.]+))?$"'
ISO_TO_S = '(divf (unixEpochNanos (toDate "2006-01-02T15:04:05Z07:00" .time)) 1000000000)'


def sel(layer: str) -> str:
    return f'{{service_name="pc-builder", layer="{layer}"}} {RID}'


@dataclass(frozen=True)
class Row:
    """One variant of a step's row: the labels the query sets (``detail`` is a Go template
    over the line's fields, ``{{ .field }}`` only, so tests can render it)."""
    step: str
    name: str
    layer: str
    source: str
    detail: str

    def label_format(self) -> str:
        return (f'label_format step="{self.step}", name="{self.name}", layer="{self.layer}", '
                f'source="{self.source}", detail=`{self.detail}`')

    def label_replace(self, expr: str) -> str:
        """Set the row labels on an expression that lost them (an aggregation)."""
        for key in ROW_LABELS:
            expr = f'label_replace({expr}, "{key}", "{getattr(self, key)}", "", "")'
        return expr


def row(step: str, source: str, detail: str) -> Row:
    s = BY_NUMBER[int(step)]
    return Row(s.label, s.name, s.layer, source, detail)


# Every variant a step can show; tests render their details for the fixtures.
ROWS = {
    "01": row("01", "measured", "requestStart (Navigation Timing of a page, Resource Timing of a fetch), browser "
              "clock aligned on NGINX (skew: see the stat)"),
    "02": row("02", "derived", "msec - request_time ({{ .method }} {{ .uri }})"),
    "03": row("03", "derived", "{{ .upstream_addr }}: connected at step 2 + upstream_connect_time "
              "{{ .upstream_connect_time }} s (after the earlier attempts, if retried)"),
    "03-edge": row("03", "derived", "no upstream: NGINX answered itself (a static file, or an error "
                   "such as 401, 404 or 429) (= step 2)"),
    "04": row("04", "measured", "start_us on {{ .instance }} (pid {{ .pid }}, worker {{ .worker }})"),
    "05": row("05", "measured", "start_us of request.finished on {{ .instance }}"),
    "06": row("06", "measured", "db_start_us of request.finished (first query began): {{ .db_queries }} "
              "queries, {{ .db_ms }} ms in the database, {{ .db_rows }} rows"),
    "06-none": row("06", "derived", "no database query (db_queries {{ .db_queries }}): = step 5"),
    "07": row("07", "measured", "request.finished: status {{ .status }}, {{ .bytes }} bytes, "
              "duration_ms {{ .duration_ms }}"),
    "08": row("08", "derived", "end of the WSGI call = step 7 (the body does not stream; uWSGI logs no "
              "separate hand-back time)"),
    "09": row("09", "derived", "start_us + duration_us ({{ .duration_us }} us); status {{ .status }}, "
              "{{ .size }} bytes"),
    "09-bounded": row("09", "derived", "bounded by step 10 (not before step 8): uWSGI logged its end "
                      "after NGINX had sent the response (post-response cleanup, GIL)"),
    "10": row("10", "derived", "step 2 + upstream_response_time ({{ .upstream_response_time }} s)"),
    "11": row("11", "measured", "msec; status {{ .status }}, {{ .bytes_sent }} bytes sent, "
              "request_time {{ .request_time }} s"),
    "12": row("12", "measured", "responseEnd (Navigation Timing of a page, Resource Timing of a fetch), browser "
              "clock aligned on NGINX"),
}


def over_time(fn: str, layer: str, pipeline: str, r: Row, unwrap: str = "t", t: str = "") -> str:
    """``fn`` of one number per line (``unwrap``; ``t`` computes it with a template first)."""
    compute = f" | label_format t=`{t}`" if t else ""
    return f"{fn}({sel(layer)} | {pipeline} | {r.label_format()}{compute} | unwrap {unwrap} {ERR} {RANGE}) {BY}"


def first(expr: str) -> str:
    return f"bottomk(1, {expr})"


def last(expr: str) -> str:
    return f"topk(1, {expr})"


# --- the steps NGINX, uWSGI and the app log --------------------------------------------

def step_02_nginx_receives() -> str:
    return first(over_time("min_over_time", "nginx", "json msec, request_time, uri", ROWS["02"],
                           t="{{ subf .msec .request_time }}"))


def _responses(with_connects: bool) -> str:
    fields = "msec, request_time, upstream_addr, upstream_response_time"
    pipe = f"json {fields}{', upstream_connect_time' if with_connects else ''}" \
           f' | upstream_addr!="" | upstream_response_time=~"[0-9.]+({SEP}[0-9.]+){{0,2}}"'
    if with_connects:
        pipe += f' | upstream_connect_time=~"([-0-9.]+{SEP}){{0,2}}[0-9.]+"'
    pipe += f' | line_format "{{{{ .upstream_response_time }}}}" | regexp {RESPONSES}'
    if with_connects:
        pipe += f' | line_format "{{{{ .upstream_connect_time }}}}" | regexp {CONNECTS}'
    return pipe


def step_03_nginx_picks_upstream() -> str:
    # Connected after the earlier attempts' response times, plus the last attempt's connect.
    t = ("{{ if .r3 }}{{ addf (subf .msec .request_time) .r1 .r2 .c3 }}{{ else if .r2 }}"
         "{{ addf (subf .msec .request_time) .r1 .c2 }}{{ else }}{{ addf (subf .msec .request_time) .c1 }}"
         "{{ end }}")
    proxied = over_time("min_over_time", "nginx", _responses(True), ROWS["03"], t=t)
    edge = over_time("min_over_time", "nginx", 'json msec, request_time, upstream_addr | upstream_addr=""',
                     ROWS["03-edge"], t="{{ subf .msec .request_time }}")
    return first(f"{proxied} or {edge}")


def step_04_uwsgi_receives() -> str:
    return last(over_time("max_over_time", "uwsgi", 'json event, start_us, pid, worker | event="uwsgi.request"',
                          ROWS["04"], "start_us")) + " / 1000000"


def step_05_uwsgi_hands_to_flask() -> str:
    return last(over_time("max_over_time", "app", 'json event, start_us | event="request.finished"',
                          ROWS["05"], "start_us")) + " / 1000000"


def step_06_flask_works() -> str:
    queried = last(over_time(
        "max_over_time", "app",
        'json event, db_start_us, db_queries, db_ms, db_rows | event="request.finished" | db_start_us=~"[0-9]+"',
        ROWS["06"], "db_start_us")) + " / 1000000"
    none = last(over_time(
        "max_over_time", "app",
        'json event, start_us, db_start_us, db_queries | event="request.finished" | db_start_us!~"[0-9]+"',
        ROWS["06-none"], "start_us")) + " / 1000000"
    return f"({queried}) or ({none})"


def _app_time(r: Row, fields: str) -> str:
    return last(over_time("max_over_time", "app", f'json event, time{fields} | event="request.finished"', r,
                          t=f"{{{{ {ISO_TO_S} }}}}"))


def step_07_flask_responds() -> str:
    return _app_time(ROWS["07"], ", bytes, duration_ms")


def step_08_flask_returns() -> str:
    return _app_time(ROWS["08"], "")


def _uwsgi_logged_end() -> str:
    return last(over_time("max_over_time", "uwsgi", 'json event, start_us, duration_us, size | event="uwsgi.request"',
                          ROWS["09"], t="{{ addf .start_us .duration_us }}")) + " / 1000000"


def step_09_uwsgi_translates() -> str:
    # uWSGI takes its end after closing the response (GIL): when that is after NGINX sent
    # the response, step 9 is bounded by step 10, never before step 8 (as ./stack trace).
    logged, returned, upstream_done = _uwsgi_logged_end(), step_08_flask_returns(), step_10_uwsgi_sends()
    late = f"((max({logged}) > (max({step_11_nginx_sends()}) + 0.001)) and max({upstream_done}))"
    bounded = f"((max({upstream_done}) >= max({returned})) or max({returned}) or max({upstream_done}))"
    return f"({logged} unless on() {late}) or on() " + ROWS["09-bounded"].label_replace(f"({bounded} and {late})")


def step_10_uwsgi_sends() -> str:
    # The response times only: a failed connection ("-") does not hide step 10.
    return first(over_time("min_over_time", "nginx", _responses(False), ROWS["10"],
                           t="{{ addf (subf .msec .request_time) .r1 .r2 .r3 }}"))


def step_11_nginx_sends() -> str:
    return first(over_time("min_over_time", "nginx", "json msec, request_time, bytes_sent", ROWS["11"], "msec"))


# --- the browser's steps, aligned on NGINX's clock ----------------------------------------

def _beacon(field: str) -> str:
    return (f"min(min_over_time({sel('browser')} | json event, timeOrigin, {field} | event=\"browser.timing\" "
            f"| label_format t=`{{{{ divf (addf .timeOrigin .{field}) 1000 }}}}` | unwrap t {ERR} {RANGE}))")


def skew_s() -> str:
    """Browser clock minus NGINX's (s): 0 when the beacon's window already brackets NGINX's,
    else the NTP-style offset centring it on NGINX's; 0 without NGINX lines."""
    sent, received = _beacon("requestStart"), _beacon("responseEnd")
    nginx_received, nginx_sent = f"max({step_02_nginx_receives()})", f"max({step_11_nginx_sends()})"
    return (f"((((({sent} <= {nginx_received}) and ({received} >= {nginx_sent})) * 0) "
            f"or ((({sent} - {nginx_received}) + ({received} - {nginx_sent})) / 2) or ({sent} * 0)))")


def step_01_client_sends() -> str:
    return ROWS["01"].label_replace(f"({_beacon('requestStart')} - {skew_s()})")


def step_12_client_receives() -> str:
    return ROWS["12"].label_replace(f"({_beacon('responseEnd')} - {skew_s()})")


#: Each step's query by its row label ("01".."12").
TIMES = {s.label: globals()[s.function] for s in STEPS}


# --- hops ----------------------------------------------------------------------------------

def hop(step: str) -> str:
    """This step's time minus the previous step's, in ms (labels of this step's row)."""
    n = int(step)
    previous = f"max({TIMES[f'{n - 1:02d}']()})"
    if step == "11":  # NGINX answered itself: no step 10, the previous step is 3
        previous = f"({previous} or max({step_03_nginx_picks_upstream()}))"
    return f"(({TIMES[step]()}) - on() group_left() {previous}) * 1000"


def time_query() -> str:
    """Every step's time (epoch s)."""
    return " or ".join(f"({TIMES[s]()})" for s in sorted(TIMES))


def at_query() -> str:
    """Every step's time in ms after the request's first step (the earliest of them)."""
    times = time_query()
    return f"(({times}) - on() group_left() min({times})) * 1000"


def hop_query() -> str:
    return " or ".join(f"({hop(s)})" for s in sorted(TIMES) if s != "01")
