"""``./stack trace <request-id>``: the twelve steps of one request, from its log lines.

The derivation (:func:`derive`) is a pure function of a list of records in any order; the
collectors read those records from the local JSON files (:func:`records_from_files`) or
from Loki's HTTP query API (:func:`records_from_loki`). The README's "The twelve steps"
table says where each step's time comes from.

Every step says whether its time is **measured** (a clock reading a layer logged as is)
or **derived** (computed from measured numbers, e.g. NGINX ``msec - request_time``); a
step whose lines are missing is reported as missing, never invented.

Clocks: NGINX, uWSGI and the app share the host clock and are compared directly. NGINX
times are truncated to whole milliseconds, uWSGI's and the app's are microseconds, so
order checks allow each step its layer's resolution. The browser's clock may be skewed:
when its raw times already bracket NGINX's (requestStart <= NGINX received, responseEnd
>= NGINX sent) they are used as they are (skew 0); otherwise they are shifted by the
NTP-style offset that centres the browser's request..response window on NGINX's, and the
skew is shown.
"""
from __future__ import annotations

import json
import math
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from pcbuilder.request_ids import is_valid as valid_request_id  # the format NGINX accepts

from . import logfiles

BEACON_PATH = "/pc-builder-app/api/timing"
#: Requests ``--last`` skips: the beacon itself and health probes (./stack polls readyz).
NOISE_PATHS = (BEACON_PATH, "/pc-builder-app/readyz", "/pc-builder-app/healthz")

STEP_NAMES = {
    1: "client sends the request",
    2: "NGINX receives it",
    3: "NGINX picks an uWSGI server",
    4: "uWSGI receives, translates to WSGI",
    5: "uWSGI hands it to Flask",
    6: "Flask works (database, logic)",
    7: "Flask generates the response",
    8: "Flask returns it to uWSGI",
    9: "uWSGI translates the response",
    10: "uWSGI sends it to NGINX",
    11: "NGINX sends it to the client",
    12: "client receives and renders",
}
STEP_LAYERS = {1: "browser", 2: "nginx", 3: "nginx", 4: "uwsgi", 5: "app", 6: "app", 7: "app",
               8: "app", 9: "uwsgi", 10: "nginx", 11: "nginx", 12: "browser"}
#: Resolution of each layer's clock, in seconds (NGINX $msec is whole milliseconds).
RESOLUTION_S = {"nginx": 0.001, "uwsgi": 1e-6, "app": 1e-6, "browser": 1e-4}
STATIC_STEPS = (1, 2, 3, 11, 12)
#: The chain the "Done means" of issue 5 asks to be ordered.
ORDER_CHAIN = (1, 2, 4, 5, 7, 9, 11, 12)


class TraceError(Exception):
    """Printed as ``stack: <message>`` with a non-zero exit code."""


# --- small helpers ------------------------------------------------------------------

def _num(value) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    return None


def _nginx_list(value) -> list[str]:
    """NGINX's ``$upstream_*`` value as a list: ``"a, b : c"`` -> ``["a", "b", "c"]``.

    ``, `` separates servers tried within one upstream group (a retry), `` : `` an
    internal redirect to another group; both are attempts in order.
    """
    if value is None:
        return []
    text = str(value).strip()
    if not text:
        return []
    return [part.strip() for part in re.split(r"\s*[,:]\s+|\s+:\s*", text) if part.strip()]


def _secs(value: str) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None  # "-" (no connection made) or garbage
    return number if math.isfinite(number) else None


def _secs_text(seconds: float | None) -> str:
    """An upstream time for a detail line: ``0.001s``, or NGINX's ``-`` (no connection made)."""
    return "- (no connection)" if seconds is None else f"{seconds}s"


def _instance_of(addr: str) -> str:
    """``unix:/run/app1.sock`` -> ``app1``; ``127.0.0.1:3031`` stays as it is."""
    if addr.startswith("unix:"):
        return Path(addr[5:]).stem
    return addr


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="microseconds")


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


# --- picking the lines of one request -------------------------------------------------

def _pick_nginx(records: list[dict]) -> tuple[dict | None, list[str]]:
    lines = [r for r in records if r.get("event") == "nginx.access" or
             (r.get("layer") == "nginx" and "msec" in r)]
    lines = [r for r in lines if _num(r.get("msec")) is not None]
    notes = []
    if len(lines) > 1:
        notes.append(f"{len(lines)} NGINX lines carry this id (the client reused it); "
                     "tracing the first")
    lines.sort(key=lambda r: _num(r["msec"]) - (_num(r.get("request_time")) or 0))
    return (lines[0] if lines else None), notes


def _pick_uwsgi(records: list[dict], nginx: dict | None) -> tuple[dict | None, list[dict]]:
    lines = [r for r in records if r.get("event") == "uwsgi.request"
             and isinstance(r.get("start_us"), int)]
    lines.sort(key=lambda r: r["start_us"])
    if not lines:
        return None, []
    chosen = None
    if nginx is not None:
        addrs = _nginx_list(nginx.get("upstream_addr"))
        if addrs:
            last = _instance_of(addrs[-1])
            chosen = next((r for r in reversed(lines) if r.get("instance") == last), None)
    chosen = chosen or lines[-1]
    return chosen, [r for r in lines if r is not chosen]


def _pick_app(records: list[dict], uwsgi: dict | None) -> list[dict]:
    lines = [r for r in records if r.get("layer") == "app"
             and logfiles.event_time(r) is not None]
    if uwsgi is not None:
        same = [r for r in lines if r.get("instance") == uwsgi.get("instance")
                and (r.get("pid") is None or uwsgi.get("pid") is None or r.get("pid") == uwsgi.get("pid"))]
        lines = same or lines
    lines.sort(key=logfiles.event_time)
    return lines


def _pick_browser(records: list[dict]) -> dict | None:
    lines = [r for r in records if r.get("event") == "browser.timing"
             and _num(r.get("timeOrigin")) is not None]
    lines.sort(key=lambda r: logfiles.event_time(r) or 0.0)
    return lines[0] if lines else None


# --- the derivation -------------------------------------------------------------------

def _step(number: int, t: float | None, source: str, detail: str, **extra) -> dict:
    return {"number": number, "name": STEP_NAMES[number], "layer": STEP_LAYERS[number],
            "time": t, "source": source if t is not None else "missing",
            "detail": detail, **extra}


def _attempts(nginx: dict) -> list[dict]:
    addrs = _nginx_list(nginx.get("upstream_addr"))
    statuses = _nginx_list(nginx.get("upstream_status"))
    connects = _nginx_list(nginx.get("upstream_connect_time"))
    headers = _nginx_list(nginx.get("upstream_header_time"))
    responses = _nginx_list(nginx.get("upstream_response_time"))

    def at(values, i):
        return values[i] if i < len(values) else None

    return [{"addr": addr, "instance": _instance_of(addr), "status": at(statuses, i),
             "connect_s": _secs(at(connects, i)), "header_s": _secs(at(headers, i)),
             "response_s": _secs(at(responses, i))} for i, addr in enumerate(addrs)]


def _us(value) -> float | None:
    """Epoch microseconds (an int field) as epoch seconds."""
    return value / 1e6 if isinstance(value, int) and not isinstance(value, bool) else None


def _app_start(app: list[dict], finished: dict | None) -> dict:
    """Step 5: ``request.started`` when logged (DEBUG), else the wide event's start_us."""
    started = next((r for r in app if r.get("event") == "request.started"), None)
    if started is not None:
        return _step(5, logfiles.event_time(started), "measured",
                     f"request.started on {started.get('instance')}")
    t5 = _us(finished.get("start_us")) if finished else None
    if t5 is not None:
        return _step(5, t5, "measured", f"start_us of request.finished on {finished.get('instance')}")
    return _step(5, None, "missing", "no request.finished line with start_us")


def _app_database(app: list[dict], finished: dict | None, t5: float | None) -> dict:
    """Step 6: the database work, from ``db.query`` lines when logged (DEBUG), else from the
    wide event's db_queries / db_ms / db_rows / db_start_us."""
    queries = [r for r in app if r.get("event") == "db.query"]
    if queries:
        first = queries[0]
        db_ms = sum(_num(q.get("duration_ms")) or 0.0 for q in queries)
        t6 = logfiles.event_time(first) - (_num(first.get("duration_ms")) or 0.0) / 1000
        rows = sum(q.get("rows") or 0 for q in queries if isinstance(q.get("rows"), int))
        return _step(6, t6, "derived", f"{len(queries)} db.query, {db_ms:.3f} ms in the "
                     f"database, {rows} rows (time: first query's end - its duration)",
                     db_queries=len(queries), db_ms=round(db_ms, 3))
    if finished is None:
        return _step(6, None, "missing", "no request.finished line")
    count = finished.get("db_queries") if isinstance(finished.get("db_queries"), int) else 0
    db_ms = _num(finished.get("db_ms")) or 0.0
    t6 = _us(finished.get("db_start_us"))
    if count and t6 is not None:
        return _step(6, t6, "measured", f"{count} quer{'y' if count == 1 else 'ies'}, {db_ms:.3f} ms "
                     f"in the database, {finished.get('db_rows')} rows, "
                     f"{finished.get('components')} components (db_start_us of request.finished)",
                     db_queries=count, db_ms=round(db_ms, 3))
    return _step(6, t5, "derived", "no database query (db_queries 0): step 5's time",
                 db_queries=0, db_ms=0.0)


def derive(records: Iterable[dict], request_id: str) -> dict:
    """The trace of ``request_id`` from its records (any order, any mix of layers)."""
    records = [r for r in records if isinstance(r, dict) and r.get("request_id") == request_id]
    notes: list[str] = []
    nginx, more = _pick_nginx(records)
    notes += more
    uwsgi, other_uwsgi = _pick_uwsgi(records, nginx)
    app = _pick_app(records, uwsgi)
    browser = _pick_browser(records)

    attempts = _attempts(nginx) if nginx else []
    static = nginx is not None and not attempts and uwsgi is None and not app
    steps: dict[int, dict] = {}

    # 2 and 11: NGINX's own clock. msec is when the access line was written (response sent).
    t2 = t11 = None
    request_time = None
    if nginx is not None:
        t11 = _num(nginx.get("msec"))
        request_time = _num(nginx.get("request_time"))
        if t11 is not None and request_time is not None:
            t2 = t11 - request_time
        steps[2] = _step(2, t2, "derived", f"msec - request_time ({nginx.get('method')} "
                         f"{nginx.get('uri')} from {nginx.get('remote_addr')})")
        steps[11] = _step(11, t11, "measured", f"msec; status {nginx.get('status')}, "
                          f"{nginx.get('bytes_sent')} bytes sent, request_time {request_time}s")
    else:
        steps[2] = _step(2, None, "missing", "no NGINX access line for this id")
        steps[11] = _step(11, None, "missing", "no NGINX access line for this id")

    # 3: the upstream chosen; with a retry, the earlier attempts come first.
    if static:
        steps[3] = _step(3, t2, "derived", "no upstream: NGINX served a static file itself",
                         upstream=None)
    elif attempts:
        last = attempts[-1]
        t3 = None
        if t2 is not None and last["connect_s"] is not None:
            before = sum(a["response_s"] or 0.0 for a in attempts[:-1])
            t3 = t2 + before + last["connect_s"]
        tried = "; ".join(f"{a['addr']} (status {a['status']}, connect {_secs_text(a['connect_s'])})"
                          for a in attempts[:-1])
        detail = f"{last['instance']} ({last['addr']}); " + (
            f"connected at step 2 + upstream_connect_time {last['connect_s']}s"
            if last["connect_s"] is not None else "no connection made (upstream_connect_time -)")
        if tried:
            detail += f"; RETRY: first tried {tried}"
            notes.append(f"NGINX retried: {len(attempts)} attempts "
                         f"({', '.join(a['instance'] for a in attempts)})")
        steps[3] = _step(3, t3, "derived", detail, upstream=last["instance"],
                         upstream_addr=last["addr"], retry=len(attempts) > 1, attempts=attempts)
    else:
        steps[3] = _step(3, None, "missing", "no upstream in the NGINX line" if nginx
                         else "no NGINX access line for this id")

    if not static:
        # 4 and 9: uWSGI's request line (start and duration in microseconds).
        if uwsgi is not None:
            t4 = uwsgi["start_us"] / 1e6
            dur = uwsgi.get("duration_us")
            t9 = t4 + dur / 1e6 if isinstance(dur, int) else None
            steps[4] = _step(4, t4, "measured", f"start_us on {uwsgi.get('instance')} "
                             f"(pid {uwsgi.get('pid')}, worker {uwsgi.get('worker')})",
                             instance=uwsgi.get("instance"))
            steps[9] = _step(9, t9, "derived", f"start_us + duration_us ({dur} us); "
                             f"status {uwsgi.get('status')}, {uwsgi.get('size')} bytes")
            if other_uwsgi:
                notes.append("uWSGI also logged this id on " +
                             ", ".join(str(r.get("instance")) for r in other_uwsgi))
            if steps[3].get("upstream") and steps[3]["upstream"] != uwsgi.get("instance"):
                notes.append(f"NGINX chose {steps[3]['upstream']} but uWSGI line is from "
                             f"{uwsgi.get('instance')}")
        else:
            steps[4] = _step(4, None, "missing", "no uWSGI request line for this id")
            steps[9] = _step(9, None, "missing", "no uWSGI request line for this id")

        # 5-8: the app's wide event (request.finished), or its fine events at DEBUG.
        finished = next((r for r in reversed(app) if r.get("event") == "request.finished"), None)
        failed = next((r for r in app if r.get("event") == "request.failed"), None)
        t7 = logfiles.event_time(finished) if finished else None
        steps[5] = _app_start(app, finished)
        steps[6] = _app_database(app, finished, steps[5]["time"])
        if failed is not None:
            notes.append(f"the app logged request.failed ({failed.get('error')})")
        if finished is not None:
            steps[7] = _step(7, t7, "measured", f"request.finished: status {finished.get('status')}, "
                             f"{finished.get('bytes')} bytes, duration_ms {finished.get('duration_ms')}")
            steps[8] = _step(8, t7, "derived", "end of the WSGI call = step 7 (the body does not "
                             "stream); uWSGI logs no separate hand-back time")
        else:
            steps[7] = _step(7, None, "missing", "no request.finished line")
            steps[8] = _step(8, None, "missing", "no request.finished line")

        # 10: upstream done, seen from NGINX.
        t10 = None
        if attempts and t2 is not None and all(a["response_s"] is not None for a in attempts):
            t10 = t2 + sum(a["response_s"] for a in attempts)
            steps[10] = _step(10, t10, "derived", f"step 2 + upstream_response_time "
                              f"({nginx.get('upstream_response_time')}s)")
        else:
            steps[10] = _step(10, None, "missing", "no upstream_response_time in the NGINX line"
                              if nginx else "no NGINX access line for this id")

        # uWSGI takes its end time after closing the response iterator, which needs the GIL:
        # with busy threads that can be milliseconds after NGINX already had the whole
        # response. The response cannot have left uWSGI after NGINX had it, so then step 9
        # is bounded by step 10 (never before step 8), and the tail is shown as a hop.
        t9 = steps[9]["time"]
        if t9 is not None and t10 is not None and t11 is not None and \
                t9 > t11 + RESOLUTION_S["nginx"]:
            bounded = max(t10, steps[8]["time"] or t10)
            steps[9] = _step(9, bounded, "derived",
                             f"bounded by step 10 (not before step 8): uWSGI logged its end (start_us + duration_us) "
                             f"{(t9 - t11) * 1000:.3f} ms after NGINX had sent the response, "
                             "i.e. after post-response cleanup (closing the iterator, GIL)",
                             uwsgi_logged_end=t9)
            notes.append("uWSGI's logged end trails the response; step 9 is bounded by "
                         "NGINX's upstream-done time (step 10)")

    # 1 and 12: the browser's beacon, aligned to the server clock.
    skew_s = None
    if browser is not None:
        origin = _num(browser.get("timeOrigin"))
        b1 = origin + _num(browser.get("requestStart")) if _num(browser.get("requestStart")) is not None else None
        b12 = origin + _num(browser.get("responseEnd")) if _num(browser.get("responseEnd")) is not None else None
        b1 = b1 / 1000 if b1 is not None else None
        b12 = b12 / 1000 if b12 is not None else None
        skew_s = 0.0
        how = "browser clock used as is (it already brackets NGINX's times)"
        if None not in (b1, b12, t2, t11) and not (b1 <= t2 and b12 >= t11):
            skew_s = ((b1 - t2) + (b12 - t11)) / 2
            how = (f"browser clock shifted by {-skew_s * 1000:+.3f} ms (NTP-style: its request.."
                   "response window centred on NGINX's)")
        elif None in (t2, t11):
            how = "browser clock used as is (no NGINX line to align on)"

        def aligned(ms_key):
            v = _num(browser.get(ms_key))
            return None if v is None or v <= 0 else (origin + v) / 1000 - skew_s

        t1 = b1 - skew_s if b1 is not None else None
        t12 = b12 - skew_s if b12 is not None else None
        steps[1] = _step(1, t1, "measured", f"requestStart (Navigation Timing); {how}",
                         skew_ms=_ms(skew_s))
        dcl, load = aligned("domContentLoadedEventEnd"), aligned("loadEventEnd")
        rendered = []
        if t12 is not None:
            start = aligned("responseStart")
            if start is not None:
                rendered.append(f"first byte {_ms(start - t1) if t1 else '?'} ms after send")
            if dcl is not None:
                rendered.append(f"DOMContentLoaded +{_ms(dcl - t12)} ms")
            if load is not None:
                rendered.append(f"load +{_ms(load - t12)} ms")
        steps[12] = _step(12, t12, "measured", "responseEnd (Navigation Timing)" +
                          (f"; rendered: {', '.join(rendered)}" if rendered else ""),
                          dom_content_loaded=dcl, load_end=load,
                          beacon_request_id=browser.get("beacon_request_id"))
    else:
        for n in (1, 12):
            steps[n] = _step(n, None, "missing", "no browser.timing beacon for this id "
                             "(not a page view, or the beacon has not arrived)")

    ordered = [steps[n] for n in sorted(steps)]
    first = next((s["time"] for s in ordered if s["time"] is not None), None)
    for s in ordered:
        s["offset_ms"] = _ms(s["time"] - first) if s["time"] is not None and first is not None else None
        s["iso_time"] = _iso(s["time"])

    hops = _hops(steps, nginx, uwsgi, app, attempts, request_time)
    summary = None
    if nginx is not None:
        summary = {"method": nginx.get("method"), "uri": nginx.get("uri"),
                   "status": nginx.get("status"), "bytes_sent": nginx.get("bytes_sent"),
                   "request_time_ms": _ms(request_time), "upstream": steps[3].get("upstream"),
                   "retry": bool(steps[3].get("retry")), "static": static,
                   "traceparent": nginx.get("traceparent") or None}
    return {
        "request_id": request_id,
        "summary": summary,
        "steps": ordered,
        "hops": hops,
        "browser_skew_ms": _ms(skew_s),
        "missing": [s["number"] for s in ordered if s["time"] is None],
        "order": check_order(ordered),
        "notes": notes,
        "records": len(records),
    }


def _hops(steps, nginx, uwsgi, app, attempts, request_time) -> list[dict]:
    """Durations between steps. They partition NGINX's request_time when all are known."""
    def t(n):
        s = steps.get(n)
        return s["time"] if s else None

    hops = []

    def add(name, seconds, source, detail, *, clamp=False):
        note = ""
        if seconds is not None and clamp and seconds < 0:
            note = f" (computed {seconds * 1000:.3f} ms: below NGINX's 1 ms resolution, shown as 0)"
            seconds = 0.0
        hops.append({"name": name, "ms": _ms(seconds), "source": source if seconds is not None
                     else "missing", "detail": detail + note})

    if t(1) is not None and t(2) is not None:
        add("client -> NGINX (network)", t(2) - t(1), "derived", "step 2 - step 1 (browser clock aligned)")
    connect = None
    if attempts and all(a["connect_s"] is not None for a in attempts):
        connect = sum(a["connect_s"] for a in attempts)
    if steps.get(4) is not None:  # proxied request
        edge = None
        if t(4) is not None and t(2) is not None:
            edge = (t(4) - t(2)) - (connect or 0.0)
        add("NGINX edge before upstream", edge, "derived",
            "step 4 - step 2 - connect (NGINX reading the request, picking a server, "
            "hand-off to uWSGI)", clamp=True)
        add("connect to uWSGI", connect, "measured", "upstream_connect_time" +
            (" (all attempts)" if len(attempts) > 1 else ""))
        flask = None
        finished = next((r for r in reversed(app) if r.get("event") == "request.finished"), None)
        if finished is not None:
            flask = (_num(finished.get("duration_ms")) or 0.0) / 1000
        outside = None
        if uwsgi is not None and flask is not None and t(9) is not None and t(4) is not None:
            outside = (t(9) - t(4)) - flask
        add("uWSGI outside Flask", outside, "derived",
            "step 9 - step 4 - Flask duration_ms (WSGI translation both ways)", clamp=True)
        add("Flask (request start -> finished)", flask, "measured", "request.finished duration_ms")
        db = steps[6].get("db_ms") if steps.get(6) else None
        add("  of which database", None if db is None else db / 1000, "measured",
            "db_ms of request.finished (at DEBUG: the sum of db.query duration_ms)")
        back = None
        if t(9) is not None and t(11) is not None:
            back = t(11) - t(9)
        add("back to the client (uWSGI end -> NGINX sent)", back, "derived", "step 11 - step 9",
            clamp=True)
        tail = steps[9].get("uwsgi_logged_end") if steps.get(9) else None
        if tail is not None:
            add("uWSGI post-response cleanup (off the client's path)", tail - t(9), "derived",
                "uWSGI's logged end - step 9")
    else:
        add("NGINX serving the static file", request_time, "measured", "request_time")
    if t(11) is not None and t(12) is not None:
        add("NGINX -> client (network, receive)", t(12) - t(11), "derived",
            "step 12 - step 11 (browser clock aligned)")
    return hops


def check_order(steps: list[dict]) -> dict:
    """client send <= NGINX receive <= uWSGI start <= Flask start <= Flask end <= uWSGI end
    <= NGINX end <= client receive, each comparison allowing both layers' clock resolution."""
    by_number = {s["number"]: s for s in steps}
    present = [by_number[n] for n in ORDER_CHAIN if n in by_number and by_number[n]["time"] is not None]
    violations = []
    for a, b in zip(present, present[1:]):
        slack = RESOLUTION_S[a["layer"]] + RESOLUTION_S[b["layer"]]
        if a["time"] > b["time"] + slack:
            violations.append(f"step {a['number']} is {(a['time'] - b['time']) * 1000:.3f} ms "
                              f"after step {b['number']}")
    return {"chain": [s["number"] for s in present], "consistent": not violations,
            "violations": violations}


# --- collecting records ---------------------------------------------------------------

def records_from_files(log_dir: Path, request_id: str) -> list[dict]:
    return logfiles.records_with(log_dir, request_id)


def last_request_id_from_files(log_dir: Path) -> str | None:
    """The newest request in NGINX's access log, from its tail (then the whole file)."""
    access = log_dir / "nginx" / "access.log"
    if not access.exists():
        return None
    for max_bytes in (256 * 1024, None):
        lines = logfiles.last_lines(access, max_bytes)
        found = last_request_id([r for r in map(logfiles.parse, lines) if r is not None])
        if found is not None:
            return found
    return None


def _loki_get(loki_url: str, query: str, since_s: float, limit: int, direction: str,
              timeout: float = 10.0) -> list[dict]:
    now_ns = time.time_ns()
    params = {"query": query, "start": str(now_ns - int(since_s * 1e9)), "end": str(now_ns),
              "limit": str(limit), "direction": direction}
    from . import loki  # requests: loaded only when Loki is asked

    resp = loki.get(loki_url, "/loki/api/v1/query_range", params, timeout)
    where = loki.where(loki_url)
    if resp.status_code != 200:
        raise loki.LokiError(f"Loki at {where} answered {resp.status_code} to the query:"
                             f" {' '.join(resp.text.split())[:200]}")
    try:
        result = resp.json()["data"]["result"]
    except (ValueError, KeyError, TypeError):
        raise loki.LokiError(f"Loki at {where} answered something that is not a query result") from None
    records = []
    for stream in result or []:
        labels = stream.get("stream") or {}
        for ts_ns, line, *_ in stream.get("values") or []:
            record = logfiles.parse(line)
            if record is None:
                continue
            # Labels and structured metadata fill in what the line itself lacks.
            for key in ("layer", "instance", "request_id"):
                if key in labels:
                    record.setdefault(key, labels[key])
            record.setdefault("_loki_ts_ns", ts_ns)
            records.append(record)
    return records


def records_from_loki(loki_url: str, request_id: str, since_s: float = 86400) -> list[dict]:
    query = f'{{service_name="pc-builder"}} | request_id="{request_id}"'
    return _loki_get(loki_url, query, since_s, 5000, "forward")


def last_request_id(records: list[dict]) -> str | None:
    """The most recent request NGINX logged, skipping the beacon and health probes."""
    best, best_t = None, None
    for r in records:
        if r.get("event") != "nginx.access" or not valid_request_id(r.get("request_id")):
            continue
        uri = str(r.get("uri") or "").split("?", 1)[0]
        if uri in NOISE_PATHS:
            continue
        t = _num(r.get("msec"))
        if t is not None and (best_t is None or t >= best_t):
            best, best_t = r["request_id"], t
    return best


def last_request_id_from_loki(loki_url: str, since_s: float = 86400) -> str | None:
    query = '{service_name="pc-builder", layer="nginx"}'
    return last_request_id(_loki_get(loki_url, query, since_s, 200, "backward"))


def _from_loki(request_id: str | None, loki_url: str, since_s: float) -> tuple[str | None, list[dict]]:
    if request_id is None:
        request_id = last_request_id_from_loki(loki_url, since_s)
        if request_id is None:
            return None, []
    return request_id, records_from_loki(loki_url, request_id, since_s)


def _from_files(request_id: str | None, log_dir: Path) -> tuple[str | None, list[dict]]:
    if not log_dir.is_dir():
        raise TraceError(f"LOG_DIR={log_dir} does not exist: no log files to trace from")
    if request_id is None:
        request_id = last_request_id_from_files(log_dir)
        if request_id is None:
            return None, []
    return request_id, records_from_files(log_dir, request_id)


def collect(request_id: str | None, *, log_dir: Path, loki_url: str = "",
            since_s: float = 86400, warn=None) -> tuple[str, list[dict], str]:
    """(request id, its records, where they came from). ``None`` means the last request.

    From Loki when ``loki_url`` is set; when Loki is unreachable, from the local files
    (which hold every layer's lines on this host), after ``warn(<why>)``."""
    if request_id is not None and not valid_request_id(request_id):
        raise TraceError(f"{request_id!r} is not a request id: 8-128 characters of "
                         "A-Z a-z 0-9 . _ -")
    found = None
    if loki_url:
        from . import loki  # requests: loaded only when Loki is asked

        where = f"Loki ({loki.where(loki_url)})"
        try:
            found = _from_loki(request_id, loki_url, since_s)
        except loki.LokiUnreachable as exc:
            if warn is not None:
                warn(f"{exc}; reading the local files in {log_dir} instead")
        except loki.LokiError as exc:
            raise TraceError(f"{exc}; ./stack trace --files reads the local files in {log_dir}"
                             " instead") from None
    if found is None:
        where = str(log_dir)
        found = _from_files(request_id, log_dir)
    request_id, records = found
    if request_id is None:
        raise TraceError(f"no request in the NGINX access log ({where}) to trace")
    records = [r for r in records if r.get("request_id") == request_id]
    if not records:
        raise TraceError(f"no log line carries request id {request_id!r} in {where}")
    return request_id, records, where


# --- output ---------------------------------------------------------------------------

def _clock(t: float | None) -> str:
    if t is None:
        return "-"
    return datetime.fromtimestamp(t).strftime("%H:%M:%S.%f")


def render(trace: dict, where: str = "") -> str:
    out = []
    s = trace["summary"]
    head = f"request {trace['request_id']}"
    if s:
        head += f": {s['method']} {s['uri']} -> {s['status']}, {s['bytes_sent']} bytes, " \
                f"{s['request_time_ms']} ms at NGINX"
        head += ", static (NGINX only)" if s["static"] else f", upstream {s['upstream'] or '?'}"
        if s["retry"]:
            head += " (after a RETRY)"
        if s.get("traceparent"):
            head += f"\ntraceparent {s['traceparent']}"
    out.append(head)
    if where:
        out.append(f"lines from {where}: {trace['records']}")
    out.append("")
    out.append(f"{'#':>2}  {'step':<35} {'layer':<8} {'time (local)':<15} {'+ms':>9}  {'source':<8}  detail")
    for st in trace["steps"]:
        offset = "" if st["offset_ms"] is None else f"{st['offset_ms']:.3f}"
        source = "MISSING" if st["time"] is None else st["source"]
        out.append(f"{st['number']:>2}  {st['name']:<35} {st['layer']:<8} {_clock(st['time']):<15} "
                   f"{offset:>9}  {source:<8}  {st['detail']}")
    out.append("")
    out.append("hops")
    for h in trace["hops"]:
        ms = "-" if h["ms"] is None else f"{h['ms']:.3f} ms"
        source = "MISSING" if h["ms"] is None else h["source"]
        out.append(f"  {h['name']:<52} {ms:>12}  {source:<8}  {h['detail']}")
    out.append("")
    order = trace["order"]
    chain = " <= ".join(str(n) for n in order["chain"])
    out.append(f"order {chain}: " + ("consistent" if order["consistent"]
                                     else "INCONSISTENT: " + "; ".join(order["violations"])))
    if trace["browser_skew_ms"] is not None:
        out.append(f"browser clock skew: {trace['browser_skew_ms']:+.3f} ms (subtracted from browser times)")
    if trace["missing"]:
        out.append("missing steps: " + ", ".join(map(str, trace["missing"])))
    for note in trace["notes"]:
        out.append(f"note: {note}")
    out.append("measured = a layer's clock reading as logged; derived = computed from measured "
               "numbers; NGINX times have 1 ms resolution, uWSGI/app 1 us")
    return "\n".join(out)


def to_json(trace: dict) -> str:
    return json.dumps(trace, indent=2)
