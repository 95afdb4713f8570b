"""./stack trace against a real stack (./stack up -d): steps 2-11 of one request, in order."""
from __future__ import annotations

import json
import time
import uuid

import pytest

pytestmark = pytest.mark.integration

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
NGINX_RESOLUTION_MS = 1.0  # $msec and $request_time are whole milliseconds


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
    # In order, each comparison allowing NGINX's 1 ms resolution.
    for n in range(2, 11):
        assert steps[n]["time"] <= steps[n + 1]["time"] + NGINX_RESOLUTION_MS / 1000, (n, steps)
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

    human = stack.run("trace", rid).stdout
    for n in range(2, 12):
        assert f"\n{n:>2}  " in human
    assert "MISSING" in human and "hops" in human


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


def test_last_traces_the_most_recent_request(stack):
    rid = "itrace-last-" + uuid.uuid4().hex[:8]
    stack.request("/pc-builder-app/main", headers={"X-Request-ID": rid})
    wait_for_lines(stack, rid, ("nginx",))
    assert json.loads(stack.run("trace", "--last", "--json").stdout)["request_id"] == rid


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
        assert events == ["request.started", "db.query", "components.retrieved", "request.finished"]
        steps = {s["number"]: s for s in trace_json(stack, rid)["steps"]}
        assert steps[5]["detail"].startswith("request.started")
        assert "db.query" in steps[6]["detail"] and steps[6]["source"] == "derived"
    finally:
        stop_stack(stack)
