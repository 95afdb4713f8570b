"""Detail on demand through the real stack (./stack up -d: NGINX, uWSGI, the app): a normal
request writes one app line; a failed, a slow and a sampled one write their fine events
first, with their id, bounded, without user data; ``./stack trace`` shows them in steps 5-7."""
from __future__ import annotations

import json
import os
import uuid

import pytest

from tests.support.stack import start_stack, stop_stack

pytestmark = pytest.mark.integration

TABLE = "/pc-builder-app/table"
#: Hostile values a client controls; none may reach a kept line.
COOKIE = "session=hunter2-cookie-value"
AUTH = "Bearer bearer-secret-token"
QUERY = "?q=search-secret-text&sort=name&tok-secret-name=1"
SECRETS = ("hunter2-cookie-value", "bearer-secret-token", "search-secret-text", "tok-secret-name")


def started(tmp_path_factory, name: str, **env):
    return start_stack(tmp_path_factory.mktemp(name), APP_INSTANCES="1", **env)


@pytest.fixture(scope="module")
def stacks(tmp_path_factory):
    """Three stacks: the tests' defaults (nothing kept by chance), every request slow
    (``LOG_DETAIL_SLOW_MS=0``), every request sampled with a bound of 3 events."""
    made = {}
    try:
        made["normal"] = started(tmp_path_factory, "detail-normal")
        made["slow"] = started(tmp_path_factory, "detail-slow", LOG_DETAIL_SLOW_MS="0")
        made["sampled"] = started(tmp_path_factory, "detail-sampled", LOG_DETAIL_SAMPLE="1",
                                  LOG_DETAIL_MAX_EVENTS="3")
        yield made
    finally:
        for stack in made.values():
            stop_stack(stack)


def send(stack, path: str = TABLE + QUERY) -> tuple[str, int]:
    rid = "idetail-" + uuid.uuid4().hex
    resp = stack.request(path, headers={"X-Request-ID": rid, "Cookie": COOKIE, "Authorization": AUTH})
    return rid, resp.status


def app_lines(stack, rid: str) -> list[dict]:
    """The request's app lines once its wide event is there, in file order."""
    def done():
        mine = [r for r in stack.records("app") if r.get("request_id") == rid]
        return mine if any(r.get("event") == "request.finished" for r in mine) else None

    return stack.wait_for(done, what=f"request.finished of {rid}")


def assert_no_user_data(lines: list[dict]) -> None:
    text = json.dumps(lines)
    for secret in SECRETS:
        assert secret not in text, secret


def assert_kept_first(lines: list[dict], why: str) -> list[dict]:
    """The fine events, each ``detail: true``, all before ``request.finished`` (the last)."""
    finished = lines[-1]
    assert finished["event"] == "request.finished" and finished["detail"] == why
    kept = [r for r in lines if r.get("detail") is True]
    assert kept and all(lines.index(r) < len(lines) - 1 for r in kept)
    assert finished["detail_kept"] == len(kept)
    assert_no_user_data(lines)
    return kept


def test_a_normal_request_writes_exactly_one_app_line(stacks):
    rid, status = send(stacks["normal"])
    assert status == 200
    (line,) = app_lines(stacks["normal"], rid)
    assert line["event"] == "request.finished" and "detail" not in line
    assert_no_user_data([line])


def test_a_slow_request_writes_its_fine_events_and_the_trace_shows_them(stacks):
    stack = stacks["slow"]
    rid, status = send(stack)
    assert status == 200
    kept = assert_kept_first(app_lines(stack, rid), "slow")
    assert [r["event"] for r in kept] == ["request.started", "listing.parsed", "db.query",
                                          "components.retrieved", "template.rendered"]
    query = next(r for r in kept if r["event"] == "db.query")
    assert isinstance(query["start_us"], int) and query["rows"] == 0  # the search matched nothing

    data = json.loads(stack.run("trace", rid, "--json").stdout)
    steps = {s["number"]: s for s in data["steps"]}
    assert steps[6]["source"] == ("measured" if "start_us" in query else "derived")
    detail = data["kept_detail"]
    assert detail["why"] == "slow" and detail["kept"] == 5 and detail["dropped"] == 0
    assert [(e["event"], e["step"]) for e in detail["events"]] == [
        ("request.started", 5), ("listing.parsed", 6), ("db.query", 6), ("components.retrieved", 6),
        ("template.rendered", 7)]
    for e in detail["events"]:  # inside the app's steps
        assert steps[5]["time"] - 1e-6 <= e["start"] <= steps[7]["time"] + 1e-6, e
    drawn = stack.run("trace", rid, env={"COLUMNS": "100"}).stdout
    assert "detail kept because the request was slow (LOG_DETAIL_SLOW_MS): 5 fine events" in drawn
    assert any("· db.query" in line and "SELECT id" in line for line in drawn.splitlines())
    assert any("· template.rendered" in line for line in drawn.splitlines())
    table = stack.run("trace", rid, "--table").stdout
    assert "detail kept because the request was slow" in table
    assert "render table.html" in table and "SELECT id, category" in table


def test_a_sampled_request_keeps_a_bounded_detail(stacks):
    stack = stacks["sampled"]
    rid, status = send(stack)
    assert status == 200
    lines = app_lines(stack, rid)
    kept = assert_kept_first(lines, "sampled")
    assert [r["event"] for r in kept] == ["request.started", "listing.parsed", "db.query"]
    assert lines[-1]["detail_kept"] == 3 and lines[-1]["detail_dropped"] == 2
    text = stack.run("trace", rid, "--table").stdout
    assert "detail kept because the request was sampled (LOG_DETAIL_SAMPLE)" in text
    assert "2 more dropped (over the per-request bound)" in text


def test_a_failed_request_keeps_its_detail_when_the_database_is_unavailable(stacks):
    stack = stacks["normal"]
    database = os.path.join(stack.env["DATA_DIR"], "pcbuilder.sqlite3")
    os.rename(database, database + ".away")
    try:
        rid, status = send(stack, "/pc-builder-app/api/components?q=search-secret-text")
    finally:
        os.rename(database + ".away", database)
    assert status == 500
    lines = app_lines(stack, rid)
    kept = assert_kept_first(lines, "error")
    assert [r["event"] for r in kept] == ["request.started", "listing.parsed", "db.query", "log.record"]
    assert kept[2]["error"] == "OperationalError"
    assert (kept[3]["record_level"], kept[3]["message"]) == ("ERROR", "request.failed")
    drawn = stack.run("trace", rid, env={"COLUMNS": "100"}).stdout
    assert "detail kept because the request failed (5xx or an unhandled exception)" in drawn
    assert "FAILED: OperationalError" in stack.run("trace", rid, "--table").stdout
    # and the database is back: the next request is normal again
    rid, status = send(stack)
    assert status == 200 and [r["event"] for r in app_lines(stack, rid)] == ["request.finished"]
