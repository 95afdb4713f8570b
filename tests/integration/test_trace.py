"""./stack trace against a real stack (./stack up -d): steps 2-11 of one request, in order,
drawn as a waterfall or printed as a table; ids as a person pastes them; --last."""
from __future__ import annotations

import json
import re
import time
import uuid

import pytest

from stackctl.trace import waterfall

pytestmark = [pytest.mark.integration, pytest.mark.reads_stack]

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
NGINX_RESOLUTION_MS = 1.0  # $msec and $request_time are whole milliseconds
# How many millisecond-truncated NGINX readings each step's time adds up; each can put it
# up to 1 ms early (< 1 ms either way for an upstream time). Step 2, $msec - $request_time,
# is the request's start truncated: one. Steps 3 and 10 add $upstream_connect_time or
# $upstream_response_time to it, each the difference of two truncated monotonic readings
# (ngx_current_msec at the upstream's start and end): two. Step 11, $msec: one. uWSGI's and
# the app's times are microseconds: none.
NGINX_READINGS = {2: 1, 3: 2, 10: 2, 11: 1}


def order_slack_s(a: int, b: int) -> float:
    """How far step ``a`` may seem to be after step ``b`` from NGINX's rounding alone."""
    return (NGINX_READINGS.get(a, 0) + NGINX_READINGS.get(b, 0)) * NGINX_RESOLUTION_MS / 1000


def wait_for_lines(stack, rid: str, layers=("nginx", "uwsgi", "app")) -> None:
    def complete():
        return all(any(r.get("request_id") == rid for r in stack.records(layer)) for layer in layers)

    stack.wait_for(complete, what=f"lines of {rid} in {layers}")


def trace_json(stack, rid: str) -> dict:
    return json.loads(stack.run("trace", rid, "--json").stdout)


def test_trace_of_a_page_request_has_steps_2_to_11_in_order(stack):
    rid = "itrace-" + uuid.uuid4().hex
    resp = stack.request("/pc-builder-app/table", headers={"X-Request-ID": rid, "traceparent": TRACEPARENT})
    assert resp.status == 200
    wait_for_lines(stack, rid)
    data = trace_json(stack, rid)
    steps = {s["number"]: s for s in data["steps"]}
    assert list(steps) == list(range(1, 13))
    assert data["missing"] == [1, 12]  # no browser, no beacon
    times = [steps[n]["time"] for n in range(2, 12)]
    assert None not in times
    # In order, each comparison allowing what NGINX's millisecond rounding can shift.
    for n in range(2, 11):
        assert steps[n]["time"] <= steps[n + 1]["time"] + order_slack_s(n, n + 1), (n, steps)
    assert data["order"]["consistent"], data["order"]
    assert {s["source"] for s in data["steps"] if 2 <= s["number"] <= 11} == {"measured", "derived"}

    nginx = next(r for r in stack.records("nginx") if r["request_id"] == rid)
    hops = {h["name"]: h for h in data["hops"]}
    partition = ["NGINX edge before upstream", "connect to uWSGI", "uWSGI outside Flask",
                 "Flask (request start -> finished)", "back to the client (uWSGI end -> NGINX sent)"]
    for name in partition:
        assert hops[name]["ms"] is not None and hops[name]["ms"] >= 0, hops[name]
    total = sum(hops[name]["ms"] for name in partition)
    request_time_ms = nginx["request_time"] * 1000
    assert total <= request_time_ms + NGINX_RESOLUTION_MS + 0.01
    assert total >= request_time_ms - NGINX_RESOLUTION_MS - 0.01
    assert 0 <= hops["  of which database"]["ms"] <= hops["Flask (request start -> finished)"]["ms"]
    assert steps[6]["db_queries"] >= 1
    # At the default level the app's steps come from its one wide event, both measured.
    assert "start_us" in steps[5]["detail"] and "db_start_us" in steps[6]["detail"]
    assert steps[5]["source"] == steps[6]["source"] == "measured"

    uwsgi = next(r for r in stack.records("uwsgi") if r.get("request_id") == rid)
    assert steps[3]["upstream"] == uwsgi["instance"] == data["summary"]["upstream"]
    assert data["summary"]["status"] == 200 and data["summary"]["traceparent"] == TRACEPARENT
    # traceparent: logged by NGINX, kept in the app's log context.
    assert nginx["traceparent"] == TRACEPARENT
    app_lines = [r for r in stack.records("app") if r.get("request_id") == rid]
    assert app_lines and all(r.get("traceparent") == TRACEPARENT for r in app_lines)

    table = stack.run("trace", rid, "--table").stdout
    for n in range(2, 12):
        assert f"\n{n:>2}  " in table
    assert "MISSING" in table and "hops" in table

    # The default view: every step and hop a row on one axis, fitted to COLUMNS.
    drawn = stack.run("trace", rid, env={"COLUMNS": "90"}).stdout
    assert max(map(len, drawn.splitlines())) <= 90
    canvas = waterfall.Canvas(90, waterfall.UNICODE)
    label = slice(3, 3 + canvas.label_width)
    for s in data["steps"]:
        (row,) = [line for line in drawn.splitlines() if line.startswith(f"{s['number']:>2} {s['name'][:20]}")]
        assert ("MISSING" in row) == (s["time"] is None), row
    bars = {line[label].strip(): sum(c in "▏▎▍▌▋▊▉█" for c in line) for line in drawn.splitlines()
            if line.startswith("     ")}
    assert "queue before uWSGI (hand-off)" in bars and "Flask: database and logic" in bars
    # each hop's bar is its time to scale (to a column: eighths of one are drawn as one)
    first, last = waterfall.extent(data)
    width = canvas.bar_width
    present = [s for s in data["steps"] if s["time"] is not None]
    for a, b in zip(present, present[1:]):
        name = waterfall.HOPS[(a["number"], b["number"])]
        expected = max(0.0, b["time"] - a["time"]) / (last - first) * width
        assert abs(bars[name] - expected) <= 1.01 or (expected < 0.07 and bars[name] == 0), (name, bars[name], expected)


def test_malformed_traceparent_is_not_passed_on(stack):
    rid = "itrace-tp-" + uuid.uuid4().hex[:12]
    stack.request("/pc-builder-app/healthz", headers={"X-Request-ID": rid, "traceparent": "00-zz-1"})
    wait_for_lines(stack, rid)
    assert next(r for r in stack.records("nginx") if r["request_id"] == rid)["traceparent"] == ""
    assert not any("traceparent" in r for r in stack.records("app") if r.get("request_id") == rid)


def test_static_request_trace(stack):
    rid = "itrace-static-" + uuid.uuid4().hex[:8]
    assert stack.request("/pc-builder-app/static/css/app.css", headers={"X-Request-ID": rid}).status == 200
    wait_for_lines(stack, rid, ("nginx",))
    data = trace_json(stack, rid)
    assert [s["number"] for s in data["steps"]] == [1, 2, 3, 11, 12]
    assert data["summary"]["static"] is True


def test_beacon_through_nginx_adds_steps_1_and_12(stack):
    rid = "itrace-beacon-" + uuid.uuid4().hex[:8]
    before = time.time() * 1000
    assert stack.request("/pc-builder-app/main", headers={"X-Request-ID": rid}).status == 200
    after = time.time() * 1000
    wait_for_lines(stack, rid)
    body = {"request_id": rid, "page": "/pc-builder-app/main", "timeOrigin": before - 5,
            "requestStart": 4.0, "responseStart": (after - before) + 5, "responseEnd": (after - before) + 6,
            "domContentLoadedEventEnd": (after - before) + 20, "loadEventEnd": (after - before) + 30}
    resp = stack.request("/pc-builder-app/api/timing", method="POST", body=json.dumps(body).encode(),
                         headers={"Content-Type": "text/plain;charset=UTF-8"})
    assert resp.status == 204
    wait_for_lines(stack, rid, ("browser",))
    line = next(r for r in stack.records("browser") if r["request_id"] == rid)
    assert line["layer"] == "browser" and line["beacon_request_id"] == resp.headers["X-Request-ID"]
    data = trace_json(stack, rid)
    assert data["missing"] == [] and data["order"]["consistent"], data["order"]

    bad = stack.request("/pc-builder-app/api/timing", method="POST", body=b'{"request_id": "x"}',
                        headers={"Content-Type": "text/plain"})
    assert bad.status == 400


def test_last_traces_the_most_recent_page_or_api_request(stack):
    rid = "itrace-last-" + uuid.uuid4().hex[:8]
    api = "itrace-api-" + uuid.uuid4().hex[:8]
    stack.request("/pc-builder-app/api/components?category=cpu", headers={"X-Request-ID": api})
    stack.request("/pc-builder-app/main", headers={"X-Request-ID": rid})
    # after the page: what --last skips (a static file, the beacon, a health probe)
    static = "itrace-skip-" + uuid.uuid4().hex[:8]
    stack.request("/pc-builder-app/static/css/app.css", headers={"X-Request-ID": static})
    stack.request("/pc-builder-app/api/timing", method="POST", body=b"{}", headers={"Content-Type": "text/plain"})
    stack.request("/pc-builder-app/healthz")
    wait_for_lines(stack, static, ("nginx",))
    assert json.loads(stack.run("trace", "--last", "--json").stdout)["request_id"] == rid
    listed = stack.run("trace", "--last", "2").stdout.splitlines()
    assert listed[0].startswith("the last 2 page or API requests")
    assert re.match(rf"^\S+\s+{rid}\s+200\s+[\d.]+\s+GET /pc-builder-app/main$", listed[2]), listed
    assert re.match(rf"^\S+\s+{api}\s+200\s+[\d.]+\s+GET /pc-builder-app/api/components\?category=cpu$",
                    listed[3]), listed
    assert [r["request_id"] for r in json.loads(stack.run("trace", "--last", "2", "--json").stdout)] == [api, rid]


def test_an_id_as_pasted(stack):
    rid = "itrace-Paste-" + uuid.uuid4().hex
    assert stack.request("/pc-builder-app/main", headers={"X-Request-ID": rid}).status == 200
    wait_for_lines(stack, rid)
    for pasted in (f'  "{rid}"\n', f"'{rid}'", rid[:-8]):  # quotes and spaces trimmed; a unique prefix
        assert json.loads(stack.run("trace", pasted, "--json").stdout)["request_id"] == rid
    other = stack.run("trace", rid.lower(), check=False)
    assert other.returncode == 1
    assert other.stderr.strip().endswith(f"but '{rid}' differs from it only in case (request ids are case-sensitive)")


@pytest.mark.parametrize("rid, message", [
    ("itrace-unknown-" + "0" * 16, "no log line carries request id"),
    ("bad id", "is not a request id"),
    ("short", "is not a request id"),
])
def test_unknown_or_malformed_id_fails_with_a_message(stack, rid, message):
    result = stack.run("trace", rid, check=False)
    assert result.returncode != 0
    assert message in result.stderr


def test_at_debug_the_trace_uses_the_fine_app_events(tmp_path):
    from tests.support.stack import start_stack, stop_stack

    stack = start_stack(tmp_path, LOG_LEVEL="DEBUG", APP_INSTANCES="1")
    try:
        rid = "itrace-debug-" + uuid.uuid4().hex[:8]
        assert stack.request("/pc-builder-app/table", headers={"X-Request-ID": rid}).status == 200
        wait_for_lines(stack, rid)
        events = [r["event"] for r in stack.records("app") if r.get("request_id") == rid]
        assert events == ["request.started", "listing.parsed", "db.query", "components.retrieved",
                          "template.rendered", "request.finished"]
        query = next(r for r in stack.records("app") if r.get("request_id") == rid and r["event"] == "db.query")
        data = trace_json(stack, rid)
        steps = {s["number"]: s for s in data["steps"]}
        assert steps[5]["detail"].startswith("request.started")
        # measured from the query's own start_us when it logs one, else derived from its end - duration
        assert "db.query" in steps[6]["detail"]
        assert steps[6]["source"] == ("measured" if "start_us" in query else "derived")
        kept = data["kept_detail"]
        assert kept["why"] == "debug" and [e["event"] for e in kept["events"]] == events[:-1]
        assert {e["step"] for e in kept["events"]} <= {5, 6, 7}
        drawn = stack.run("trace", rid).stdout
        assert "LOG_LEVEL=DEBUG writes them for every request" in drawn
        (row,) = [line for line in drawn.splitlines() if "· db.query" in line]
        # its duration as the waterfall writes any (3 decimals below 10 ms, 1 above: a busy
        # machine's query takes longer)
        assert query["sql"][:20] in row and f"{waterfall.format_ms(query['duration_ms'])} ms" in row
    finally:
        stop_stack(stack)
