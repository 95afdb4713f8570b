"""The twelve steps of one request from its log lines: one function per step.

``step_NN_<key>`` derives step NN (``steps.STEPS`` names them; ``logql.step_NN_<key>``
is the same step in LogQL for the dashboard). Each takes the request's lines
(:class:`lines.RequestLines`) and the steps derived before it (``DERIVATION_ORDER``) and
returns the step: its time, whether that time is **measured** (a clock reading a layer
logged as is) or **derived** (computed from measured numbers, e.g. NGINX ``msec -
request_time``), and a detail saying which field it came from. A step whose lines are
missing is reported as missing, never invented.

Clocks: NGINX, uWSGI and the app share the host clock and are compared directly. NGINX
times are truncated to whole milliseconds, uWSGI's and the app's are microseconds, so
order checks allow each step its layer's resolution. The browser's clock may be skewed:
when its raw times already bracket NGINX's (requestStart <= NGINX received, responseEnd
>= NGINX sent) they are used as they are (skew 0); otherwise they are shifted by the
NTP-style offset that centres the browser's request..response window on NGINX's, and the
skew is shown.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable

from .. import logfiles
from . import detail as fine
from .hops import check_order, hops, time_of
from .lines import RequestLines, number, pick, seconds_from_us, to_ms
from .steps import BY_NUMBER, RESOLUTION_S, STATIC_STEPS, STEPS

NO_NGINX = "no NGINX access line for this id"
NO_UWSGI = "no uWSGI request line for this id"
NO_FINISHED = "no request.finished line"
NO_BEACON = "no browser.timing beacon for this id (not a page view or fetch, or the beacon has not arrived)"


def step(number_: int, t: float | None, source: str, detail: str, **extra) -> dict:
    s = BY_NUMBER[number_]
    return {"number": number_, "name": s.name, "layer": s.layer, "time": t,
            "source": source if t is not None else "missing", "detail": detail, **extra}


def missing(number_: int, why: str, **extra) -> dict:
    return step(number_, None, "missing", why, **extra)


def seconds_text(seconds: float | None) -> str:
    """An upstream time for a detail: ``0.001s``, or NGINX's ``-`` (no connection made)."""
    return "- (no connection)" if seconds is None else f"{seconds}s"


# --- NGINX: steps 2, 3, 10 and 11 ------------------------------------------------------

def step_02_nginx_receives(req: RequestLines, steps: dict) -> dict:
    if req.nginx is None:
        return missing(2, NO_NGINX)
    sent, request_time = number(req.nginx.get("msec")), number(req.nginx.get("request_time"))
    received = sent - request_time if sent is not None and request_time is not None else None
    return step(2, received, "derived", f"msec - request_time ({req.nginx.get('method')} "
                f"{req.nginx.get('uri')} from {req.nginx.get('remote_addr')})")


def step_03_nginx_picks_upstream(req: RequestLines, steps: dict) -> dict:
    if req.static:
        return step(3, time_of(steps, 2), "derived", "no upstream: NGINX served a static file itself",
                    upstream=None)
    if not req.attempts:
        return missing(3, "no upstream in the NGINX line" if req.nginx else NO_NGINX)
    received, last = time_of(steps, 2), req.attempts[-1]
    connected = None
    if received is not None and last.connect_s is not None:
        # after the earlier attempts' whole response times, plus the last one's connect
        connected = received + sum(a.response_s or 0.0 for a in req.attempts[:-1]) + last.connect_s
    detail = f"{last.instance} ({last.addr}); " + (
        f"connected at step 2 + upstream_connect_time {last.connect_s}s"
        if last.connect_s is not None else "no connection made (upstream_connect_time -)")
    earlier = "; ".join(f"{a.addr} (status {a.status}, connect {seconds_text(a.connect_s)})"
                        for a in req.attempts[:-1])
    if earlier:
        detail += f"; RETRY: first tried {earlier}"
    return step(3, connected, "derived", detail, upstream=last.instance, upstream_addr=last.addr,
                retry=len(req.attempts) > 1, attempts=[a.as_dict() for a in req.attempts])


def step_10_uwsgi_sends(req: RequestLines, steps: dict) -> dict:
    received = time_of(steps, 2)
    if req.attempts and received is not None and all(a.response_s is not None for a in req.attempts):
        return step(10, received + sum(a.response_s for a in req.attempts), "derived",
                    f"step 2 + upstream_response_time ({req.nginx.get('upstream_response_time')}s)")
    return missing(10, "no upstream_response_time in the NGINX line" if req.nginx else NO_NGINX)


def step_11_nginx_sends(req: RequestLines, steps: dict) -> dict:
    if req.nginx is None:
        return missing(11, NO_NGINX)
    n = req.nginx
    return step(11, number(n.get("msec")), "measured", f"msec; status {n.get('status')}, "
                f"{n.get('bytes_sent')} bytes sent, request_time {number(n.get('request_time'))}s")


# --- uWSGI: steps 4 and 9 ----------------------------------------------------------------

def step_04_uwsgi_receives(req: RequestLines, steps: dict) -> dict:
    u = req.uwsgi
    if u is None:
        return missing(4, NO_UWSGI)
    return step(4, u["start_us"] / 1e6, "measured", f"start_us on {u.get('instance')} "
                f"(pid {u.get('pid')}, worker {u.get('worker')})", instance=u.get("instance"))


def step_09_uwsgi_translates(req: RequestLines, steps: dict) -> dict:
    u = req.uwsgi
    if u is None:
        return missing(9, NO_UWSGI)
    duration = u.get("duration_us")
    logged_end = u["start_us"] / 1e6 + duration / 1e6 if isinstance(duration, int) else None
    upstream_done, sent = time_of(steps, 10), time_of(steps, 11)
    # uWSGI takes its end time after closing the response iterator, which needs the GIL:
    # with busy threads that can be milliseconds after NGINX already had the whole
    # response. The response cannot have left uWSGI after NGINX had it, so then step 9
    # is bounded by step 10 (never before step 8), and the tail is shown as a hop.
    if None not in (logged_end, upstream_done, sent) and logged_end > sent + RESOLUTION_S["nginx"]:
        bounded = max(upstream_done, time_of(steps, 8) or upstream_done)
        return step(9, bounded, "derived",
                    f"bounded by step 10 (not before step 8): uWSGI logged its end (start_us + duration_us) "
                    f"{(logged_end - sent) * 1000:.3f} ms after NGINX had sent the response, "
                    "i.e. after post-response cleanup (closing the iterator, GIL)", uwsgi_logged_end=logged_end)
    return step(9, logged_end, "derived", f"start_us + duration_us ({duration} us); "
                f"status {u.get('status')}, {u.get('size')} bytes")


# --- the app: steps 5 to 8 ---------------------------------------------------------------

def step_05_uwsgi_hands_to_flask(req: RequestLines, steps: dict) -> dict:
    """``request.started`` when logged (DEBUG or kept detail), else the wide event's start_us."""
    started = req.app_event("request.started")
    if started is not None:
        return step(5, logfiles.event_time(started), "measured", f"request.started on {started.get('instance')}")
    finished = req.finished
    t = seconds_from_us(finished.get("start_us")) if finished else None
    if t is not None:
        return step(5, t, "measured", f"start_us of request.finished on {finished.get('instance')}")
    return missing(5, "no request.finished line with start_us")


def step_06_flask_works(req: RequestLines, steps: dict) -> dict:
    """The database work: each ``db.query`` when logged (DEBUG or kept detail), else the
    wide event's db_queries / db_ms / db_rows / db_start_us."""
    queries = [r for r in req.app if r.get("event") == "db.query"]
    if queries:
        first = queries[0]
        db_ms = sum(number(q.get("duration_ms")) or 0.0 for q in queries)
        rows = sum(q["rows"] for q in queries if isinstance(q.get("rows"), int))
        summary = f"{len(queries)} db.query, {db_ms:.3f} ms in the database, {rows} rows"
        start = seconds_from_us(first.get("start_us"))
        if start is not None:
            return step(6, start, "measured", f"{summary} (time: the first query's start_us)",
                        db_queries=len(queries), db_ms=round(db_ms, 3))
        start = logfiles.event_time(first) - (number(first.get("duration_ms")) or 0.0) / 1000
        return step(6, start, "derived", f"{summary} (time: first query's end - its duration)",
                    db_queries=len(queries), db_ms=round(db_ms, 3))
    finished = req.finished
    if finished is None:
        return missing(6, NO_FINISHED)
    count = finished.get("db_queries") if isinstance(finished.get("db_queries"), int) else 0
    db_ms = number(finished.get("db_ms")) or 0.0
    start = seconds_from_us(finished.get("db_start_us"))
    if count and start is not None:
        return step(6, start, "measured", f"{count} quer{'y' if count == 1 else 'ies'}, {db_ms:.3f} ms "
                    f"in the database, {finished.get('db_rows')} rows, "
                    f"{finished.get('components')} components (db_start_us of request.finished)",
                    db_queries=count, db_ms=round(db_ms, 3))
    return step(6, time_of(steps, 5), "derived", "no database query (db_queries 0): step 5's time",
                db_queries=0, db_ms=0.0)


def step_07_flask_responds(req: RequestLines, steps: dict) -> dict:
    f = req.finished
    if f is None:
        return missing(7, NO_FINISHED)
    return step(7, logfiles.event_time(f), "measured", f"request.finished: status {f.get('status')}, "
                f"{f.get('bytes')} bytes, duration_ms {f.get('duration_ms')}")


def step_08_flask_returns(req: RequestLines, steps: dict) -> dict:
    if req.finished is None:
        return missing(8, NO_FINISHED)
    return step(8, time_of(steps, 7), "derived", "end of the WSGI call = step 7 (the body does not "
                "stream); uWSGI logs no separate hand-back time")


# --- the browser: steps 1 and 12 ---------------------------------------------------------

def browser_skew(req: RequestLines, steps: dict) -> tuple[float | None, str]:
    """(browser clock minus NGINX's in seconds, how it was found); None without a beacon."""
    raw_send, raw_receive = _beacon_time(req.browser, "requestStart"), _beacon_time(req.browser, "responseEnd")
    if req.browser is None:
        return None, ""
    received, sent = time_of(steps, 2), time_of(steps, 11)
    if None in (received, sent):
        return 0.0, "browser clock used as is (no NGINX line to align on)"
    if None in (raw_send, raw_receive) or (raw_send <= received and raw_receive >= sent):
        return 0.0, "browser clock used as is (it already brackets NGINX's times)"
    skew = ((raw_send - received) + (raw_receive - sent)) / 2
    return skew, (f"browser clock shifted by {-skew * 1000:+.3f} ms (NTP-style: its request.."
                  "response window centred on NGINX's)")


def _beacon_time(beacon: dict | None, key: str) -> float | None:
    """A beacon field (ms from timeOrigin) as epoch seconds on the browser's clock."""
    if beacon is None:
        return None
    origin, offset = number(beacon.get("timeOrigin")), number(beacon.get(key))
    return None if origin is None or offset is None else (origin + offset) / 1000


def _timing_api(beacon: dict) -> str:
    return "Resource Timing of the page's fetch" if beacon.get("kind") == "fetch" else "Navigation Timing"


def step_01_client_sends(req: RequestLines, steps: dict) -> dict:
    if req.browser is None:
        return missing(1, NO_BEACON)
    skew, how = browser_skew(req, steps)
    t = _beacon_time(req.browser, "requestStart")
    return step(1, None if t is None else t - skew, "measured",
                f"requestStart ({_timing_api(req.browser)}); {how}", skew_ms=to_ms(skew))


def step_12_client_receives(req: RequestLines, steps: dict) -> dict:
    if req.browser is None:
        return missing(12, NO_BEACON)
    beacon = req.browser
    skew, _ = browser_skew(req, steps)

    def aligned(key: str) -> float | None:
        t = _beacon_time(beacon, key)
        return None if t is None or number(beacon.get(key)) <= 0 else t - skew

    received = _beacon_time(beacon, "responseEnd")
    received = None if received is None else received - skew
    dcl, load = aligned("domContentLoadedEventEnd"), aligned("loadEventEnd")
    rendered = []
    if received is not None:
        first_byte, sent = aligned("responseStart"), time_of(steps, 1)
        if first_byte is not None:
            rendered.append(f"first byte {to_ms(first_byte - sent) if sent else '?'} ms after send")
        if dcl is not None:
            rendered.append(f"DOMContentLoaded +{to_ms(dcl - received)} ms")
        if load is not None:
            rendered.append(f"load +{to_ms(load - received)} ms")
    what = "rendered" if beacon.get("kind") != "fetch" else "fetch"
    return step(12, received, "measured", f"responseEnd ({_timing_api(beacon)})" +
                (f"; {what}: {', '.join(rendered)}" if rendered else ""),
                dom_content_loaded=dcl, load_end=load, beacon_request_id=beacon.get("beacon_request_id"),
                kind=beacon.get("kind") or "navigation")


# --- the whole trace -----------------------------------------------------------------------

#: Each step after the steps it reads (3 and 10 read 2; 9 reads 8, 10, 11; 1 and 12 align on 2, 11).
DERIVATION_ORDER = (2, 11, 3, 10, 4, 5, 6, 7, 8, 9, 1, 12)
FUNCTIONS = {s.number: globals()[s.function] for s in STEPS}


def iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="microseconds")


def derive(records: Iterable[dict], request_id: str) -> dict:
    """The trace of ``request_id`` from its records (any order, any mix of layers)."""
    req = pick(records, request_id)
    steps: dict[int, dict] = {}
    for n in DERIVATION_ORDER:
        if not req.static or n in STATIC_STEPS:
            steps[n] = FUNCTIONS[n](req, steps)
    ordered = [steps[n] for n in sorted(steps)]
    first = next((s["time"] for s in ordered if s["time"] is not None), None)
    for s in ordered:
        s["offset_ms"] = to_ms(s["time"] - first) if s["time"] is not None and first is not None else None
        s["iso_time"] = iso(s["time"])
    skew, _ = browser_skew(req, steps)
    return {
        "request_id": request_id,
        "summary": summary(req, steps),
        "steps": ordered,
        "hops": hops(req, steps),
        "browser_skew_ms": to_ms(skew),
        "missing": [s["number"] for s in ordered if s["time"] is None],
        "order": check_order(ordered),
        "notes": notes(req, steps),
        "records": len(req.records),
        "kept_detail": fine.kept_detail(req, steps, first),
    }


def summary(req: RequestLines, steps: dict) -> dict | None:
    n = req.nginx
    if n is None:
        return None
    return {"method": n.get("method"), "uri": n.get("uri"), "status": n.get("status"),
            "bytes_sent": n.get("bytes_sent"), "request_time_ms": to_ms(number(n.get("request_time"))),
            "upstream": steps[3].get("upstream"), "retry": bool(steps[3].get("retry")), "static": req.static,
            "traceparent": n.get("traceparent") or None}


def notes(req: RequestLines, steps: dict) -> list[str]:
    out = list(req.notes)
    if steps[3].get("retry"):
        out.append(f"NGINX retried: {len(req.attempts)} attempts ({', '.join(a.instance for a in req.attempts)})")
    if req.uwsgi is not None and req.other_uwsgi:
        out.append("uWSGI also logged this id on " + ", ".join(str(r.get("instance")) for r in req.other_uwsgi))
    if req.uwsgi is not None and steps[3].get("upstream") and steps[3]["upstream"] != req.uwsgi.get("instance"):
        out.append(f"NGINX chose {steps[3]['upstream']} but uWSGI line is from {req.uwsgi.get('instance')}")
    failed = req.app_event("request.failed")
    if failed is not None:
        out.append(f"the app logged request.failed ({failed.get('error')})")
    if steps.get(9, {}).get("uwsgi_logged_end") is not None:
        out.append("uWSGI's logged end trails the response; step 9 is bounded by NGINX's upstream-done "
                   "time (step 10)")
    return out
