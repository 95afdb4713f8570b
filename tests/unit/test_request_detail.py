"""Detail on demand: a request's fine events are held in memory and written, before its
``request.finished``, only when it failed, was slow or was sampled; bounded; no user data."""
from __future__ import annotations

import json
import logging
import os

import pytest

from pcbuilder import create_app, request_detail

TABLE = "/pc-builder-app/table"
FINE = ("request.started", "listing.parsed", "db.query", "components.retrieved", "template.rendered")
#: Values a client controls; none may appear in a kept line.
SECRETS = ("hunter2-cookie", "s3cr3t-search", "tok-in-param-name", "basic-pw-xyz", "bearer-abc123",
           "lib-arg-secret")


@pytest.fixture
def make_app(tmp_path):
    def make(**config):
        app = create_app({"TESTING": True, "DATABASE": str(tmp_path / "data" / "db.sqlite3"),
                          "APP_LOG_FILE": str(tmp_path / "app.log"), "INSTANCE_NAME": "test",
                          "LOG_DETAIL_SAMPLE": 0.0, "LOG_DETAIL_SLOW_MS": 60_000.0, **config})

        @app.get("/pc-builder-app/test-library-logs")
        def library_logs():  # a library logging while a request runs, with user data in its arguments
            logging.getLogger("somelib.client").warning("retrying with token %s", "lib-arg-secret")
            logging.getLogger("somelib.client").info("connected to %s", "lib-arg-secret")
            return "ok"

        return app
    return make


def lines(app) -> list[dict]:
    with open(app.config["APP_LOG_FILE"], encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def of_request(app, rid: str) -> list[dict]:
    return [r for r in lines(app) if r.get("request_id") == rid]


def get(app, path=TABLE, **kwargs) -> str:
    resp = app.test_client().get(path, **kwargs)
    return resp.headers["X-Request-ID"]


def test_a_normal_request_writes_exactly_one_app_line(make_app):
    app = make_app()  # detail on (the default), not slow, not sampled
    rid = get(app)
    (line,) = of_request(app, rid)
    assert line["event"] == "request.finished"
    assert not {"detail", "detail_kept", "detail_dropped"} & set(line)
    assert request_detail.current() is None  # the buffer went with the request


@pytest.mark.parametrize("config, why", [
    ({"LOG_DETAIL_SLOW_MS": 0.0}, "slow"),
    ({"LOG_DETAIL_SAMPLE": 1.0}, "sampled"),
])
def test_a_slow_or_sampled_request_writes_its_fine_events_first(make_app, config, why):
    app = make_app(**config)
    rid = get(app, TABLE + "?sort=name")
    mine = of_request(app, rid)
    assert [r["event"] for r in mine] == [*FINE, "request.finished"]
    finished = mine[-1]
    assert finished["detail"] == why and finished["detail_kept"] == len(FINE) and finished["detail_dropped"] == 0
    fine = {r["event"]: r for r in mine[:-1]}
    assert all(r["detail"] is True and r["level"] == "INFO" for r in fine.values())
    query = fine["db.query"]
    assert query["sql"].startswith("SELECT id, category, name, brand, price, attributes FROM components ORDER BY")
    assert query["rows"] == 58 and query["duration_ms"] >= 0
    assert finished["start_us"] <= query["start_us"] <= finished["start_us"] + finished["duration_ms"] * 1000
    render = fine["template.rendered"]
    assert render["template"] == "table.html" and render["duration_ms"] > 0
    assert query["start_us"] <= render["start_us"]
    parsed = fine["listing.parsed"]
    assert (parsed["category"], parsed["sort"], parsed["order"], parsed["searched"], parsed["problems"]) == (
        None, "name", "asc", False, 0)
    assert fine["components.retrieved"]["count"] == 58
    assert fine["request.started"]["path"] == TABLE
    # each line's time is when its event happened, inside the request
    times = [r["time"] for r in mine]
    assert times == sorted(times)


def test_a_failed_request_keeps_its_detail_when_the_database_is_unavailable(make_app):
    app = make_app()
    os.rename(app.config["DATABASE"], app.config["DATABASE"] + ".gone")
    rid = get(app, "/pc-builder-app/api/components/1")
    mine = of_request(app, rid)
    finished = mine[-1]
    assert finished["event"] == "request.finished" and finished["status"] == 500 and finished["detail"] == "error"
    kept = [r for r in mine if r.get("detail") is True]
    assert [r["event"] for r in kept] == ["request.started", "db.query", "log.record"]
    query, record = kept[1], kept[2]
    assert query["error"] == "OperationalError" and query["rows"] is None
    assert record["record_level"] == "ERROR" and record["message"] == "request.failed"
    assert record["logger"] == "pcbuilder.request" and record["error"] == "OperationalError"
    assert finished["detail_kept"] == 3
    # the ERROR line itself was written when it happened, as without detail
    assert any(r["event"] == "request.failed" and r["level"] == "ERROR" for r in mine)


def test_a_failed_page_keeps_the_render_of_its_error_page(make_app):
    app = make_app()
    os.rename(app.config["DATABASE"], app.config["DATABASE"] + ".gone")
    rid = get(app)
    kept = [r["event"] for r in of_request(app, rid) if r.get("detail") is True]
    assert kept == ["request.started", "listing.parsed", "db.query", "log.record", "template.rendered"]
    assert next(r for r in of_request(app, rid) if r["event"] == "template.rendered")["template"] == "500.html"


def test_the_buffer_holds_at_most_max_events_and_counts_the_rest(make_app):
    app = make_app(LOG_DETAIL_SLOW_MS=0.0, LOG_DETAIL_MAX_EVENTS=2)
    mine = of_request(app, get(app))
    written = [r for r in mine if r.get("detail") is True]
    assert [r["event"] for r in written] == list(FINE[:2])  # the first ones, in order
    assert mine[-1]["detail_kept"] == 2 and mine[-1]["detail_dropped"] == len(FINE) - 2


def test_the_buffer_holds_at_most_max_bytes_and_counts_the_rest(make_app):
    # /table's query text is long (its ORDER BY spells out the categories' order): with
    # three fixed shares of request_detail.EVENT_BYTES, it no longer fits in 1024 bytes
    app = make_app(LOG_DETAIL_SLOW_MS=0.0, LOG_DETAIL_MAX_BYTES=1024)
    mine = of_request(app, get(app))
    written = [r["event"] for r in mine if r.get("detail") is True]
    assert "db.query" not in written and written[:2] == ["request.started", "listing.parsed"]
    assert mine[-1]["detail_kept"] == len(written) and mine[-1]["detail_dropped"] == len(FINE) - len(written) >= 1


def test_the_bound_holds_for_a_request_with_many_events(make_app):
    app = make_app(LOG_DETAIL_SLOW_MS=0.0, LOG_DETAIL_MAX_EVENTS=3)

    @app.get("/pc-builder-app/test-many")
    def many():
        for _ in range(5000):
            logging.getLogger("somelib").warning("again")
        return "ok"

    rid = get(app, "/pc-builder-app/test-many")
    finished = of_request(app, rid)[-1]
    assert finished["detail_kept"] == 3 and finished["detail_dropped"] == 5000 + 1 - 3


def test_no_user_data_in_kept_lines(make_app):
    app = make_app(LOG_DETAIL_SLOW_MS=0.0)
    client = app.test_client()
    client.set_cookie("session", "hunter2-cookie")
    headers = {"Authorization": "Bearer bearer-abc123"}
    rids = []
    for path in (TABLE + "?q=s3cr3t-search&tok-in-param-name=1&sort=s3cr3t-search",
                 "/pc-builder-app/api/components?q=s3cr3t-search&tok-in-param-name=x",
                 "/pc-builder-app/builder?cpu=s3cr3t-search",
                 "/pc-builder-app/test-library-logs?basic-pw-xyz=1"):
        resp = client.get(path, headers=headers)
        rids.append(resp.headers["X-Request-ID"])
    kept = [r for r in lines(app) if r.get("request_id") in rids and r.get("detail") is True]
    assert {r["event"] for r in kept} >= {"request.started", "listing.parsed", "db.query", "template.rendered",
                                          "log.record"}
    text = json.dumps(kept)
    for secret in SECRETS:
        assert secret not in text, secret
    parsed = next(r for r in kept if r["event"] == "listing.parsed")
    assert parsed["searched"] is True and parsed["bad"] == ["sort"] and parsed["unknown"] == 1
    records = [r for r in kept if r["event"] == "log.record"]
    assert {(r["logger"], r["record_level"], r["message"]) for r in records} == {
        ("somelib.client", "WARNING", "retrying with token %s"), ("somelib.client", "INFO", "connected to %s")}


def test_the_apps_own_info_events_are_not_records_of_the_detail(make_app):
    app = make_app(LOG_DETAIL_SLOW_MS=0.0)
    rid = get(app)
    assert not [r for r in of_request(app, rid) if r["event"] == "log.record"]


def test_off_writes_no_detail_even_for_a_slow_request(make_app):
    app = make_app(LOG_DETAIL=False, LOG_DETAIL_SLOW_MS=0.0, LOG_DETAIL_SAMPLE=1.0)
    rid = get(app)
    assert [r["event"] for r in of_request(app, rid)] == ["request.finished"]
    assert "detail" not in of_request(app, rid)[0]


@pytest.mark.parametrize("detail", [True, False])
def test_at_debug_every_event_is_written_as_it_happens(make_app, detail):
    app = make_app(LOG_LEVEL="DEBUG", LOG_DETAIL=detail)
    rid = get(app)
    mine = of_request(app, rid)
    assert [r["event"] for r in mine] == [*FINE, "request.finished"]
    assert all(r["level"] == "DEBUG" and "detail" not in r for r in mine[:-1])
    assert "detail" not in mine[-1] and "detail_kept" not in mine[-1]
    assert isinstance(next(r for r in mine if r["event"] == "db.query")["start_us"], int)


def test_a_request_only_sees_its_own_buffer(make_app):
    app = make_app(LOG_DETAIL_SLOW_MS=0.0)
    first, second = get(app), get(app)
    for rid in (first, second):
        assert of_request(app, rid)[-1]["detail_kept"] == len(FINE)


def test_an_event_that_cannot_be_rendered_is_counted_not_raised(make_app):
    app = make_app(LOG_DETAIL_SLOW_MS=0.0)

    @app.get("/pc-builder-app/test-broken-event")
    def broken():
        request_detail.current().add("listing.parsed", "pcbuilder.listing", (lambda: 1 / 0,))
        return "ok"

    resp = app.test_client().get("/pc-builder-app/test-broken-event")
    assert resp.status_code == 200
    finished = of_request(app, resp.headers["X-Request-ID"])[-1]
    assert finished["detail_kept"] == 1 and finished["detail_dropped"] == 1  # request.started written
