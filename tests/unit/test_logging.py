"""The app's local JSON log lines (pcbuilder.logging_config): fields, errors, hostile input."""
from __future__ import annotations

import json
import logging
import os
import re
from datetime import datetime, timedelta, timezone

import pytest
import structlog

from pcbuilder.logging_config import configure_logging

BASE = "/pc-builder-app"
TIME_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3,}(\+00:00|Z)")


@pytest.fixture(autouse=True)
def no_loki(monkeypatch):
    monkeypatch.delenv("LOKI_URL", raising=False)


@pytest.fixture
def boom_app(app):
    """The app with test-only routes that raise (registered before the first request)."""
    def boom():
        raise RuntimeError('kaputt "quoted"\nsecond line')

    app.add_url_rule(f"{BASE}/test-boom", "test_boom", boom)
    app.add_url_rule(f"{BASE}/api/test-boom", "test_api_boom", boom)
    return app


def raw_lines(app) -> list[bytes]:
    with open(app.config["APP_LOG_FILE"], "rb") as f:
        return f.read().splitlines()


def test_line_fields_inside_and_outside_a_request(app, client, log_lines):
    rid = "unit-fields-0001"
    response = client.get(f"{BASE}/healthz", environ_overrides={"REQUEST_ID": rid})
    assert response.status_code == 200 and response.headers["X-Request-ID"] == rid
    structlog.get_logger("pcbuilder.unit").info("outside.request", answer=42)

    assert not log_lines("request.started")  # DEBUG only: one wide event per request
    finished = log_lines("request.finished")[-1]
    outside = log_lines("outside.request")[-1]
    for line in (finished, outside):
        assert TIME_MS.fullmatch(line["time"]), line["time"]
        when = datetime.fromisoformat(line["time"].replace("Z", "+00:00"))
        assert when.utcoffset() == timedelta(0)
        assert abs(datetime.now(timezone.utc) - when) < timedelta(minutes=1)
        assert line["level"] == "INFO"
        assert line["layer"] == "app" and line["instance"] == "test"
        assert line["pid"] == os.getpid()
    assert finished["logger"] == "pcbuilder.request" and finished["request_id"] == rid
    assert finished["method"] == "GET" and finished["path"] == f"{BASE}/healthz"
    assert finished["route"] == f"{BASE}/healthz" and finished["status"] == 200
    assert outside["logger"] == "pcbuilder.unit" and outside["answer"] == 42
    assert "request_id" not in outside


@pytest.mark.parametrize("path", ["/test-boom", "/api/test-boom"])
def test_exception_is_logged_with_traceback_and_client_gets_clean_500(boom_app, log_lines, path):
    client = boom_app.test_client()
    rid = "unit-boom-0001"
    response = client.get(BASE + path, environ_overrides={"REQUEST_ID": rid})
    assert response.status_code == 500
    assert response.headers["X-Request-ID"] == rid
    body = response.get_data(as_text=True)
    assert rid in body
    assert "Traceback" not in body and "kaputt" not in body and "RuntimeError" not in body
    if "/api/" in path:
        body = response.get_json()
        assert set(body) == {"error", "detail", "request_id"}  # the one API error shape
        assert body["error"] == "internal server error" and body["request_id"] == rid
    failed = log_lines("request.failed")[-1]
    assert failed["level"] == "ERROR" and failed["request_id"] == rid
    assert failed["error"] == "RuntimeError"
    assert failed["traceback"].startswith("Traceback (most recent call last)")
    assert 'RuntimeError: kaputt "quoted"\nsecond line' in failed["traceback"]
    assert log_lines("request.finished")[-1]["status"] == 500


def test_hostile_values_stay_one_valid_json_line(app, client, log_lines):
    hostile = 'q"uote\\ \n new"line\r\t \x00\x07\x1b[31m \udcff\ud800 é \u2028 }{"forged":1'
    before = len(raw_lines(app))
    structlog.get_logger("pcbuilder.unit").warning("hostile.value", value=hostile, **{"k\"ey\n": hostile})
    lines = raw_lines(app)[before:]
    assert len(lines) == 1
    assert all(b >= 0x20 for b in lines[0])  # no raw control byte or newline
    parsed = json.loads(lines[0].decode("utf-8", "strict"))
    assert parsed["value"] == hostile and parsed['k"ey\n'] == hostile
    assert "forged" not in parsed

    # Invalid UTF-8 and control bytes as the WSGI server hands them over (latin-1 str).
    raw_path = (BASE + "/no\"such\n\x01page/").encode() + b"\xc3\x28\xff"
    before = len(raw_lines(app))
    response = client.get("/", environ_overrides={
        "PATH_INFO": raw_path.decode("latin-1"), "REQUEST_URI": raw_path.decode("latin-1")})
    assert response.status_code == 404
    lines = raw_lines(app)[before:]
    records = [json.loads(line.decode("utf-8", "strict")) for line in lines]  # valid JSON
    assert [r["event"] for r in records] == ["request.finished"]
    assert records[0]["path"].startswith(BASE + '/no"such\n\x01page/')
    assert records[0]["route"] is None and records[0]["status"] == 404
    assert not any("forged" in r for r in records)


def test_keys_named_like_logrecord_attributes_or_line_fields_are_not_fatal(app, log_lines):
    log = structlog.get_logger("pcbuilder.unit")
    log.info("clashing.keys", name="n", args="a", message="m", module="mod", msg="x",
             levelname="lv", level="forged", instance="forged", layer="forged", pid=1)
    line = log_lines("clashing.keys")[-1]
    # The event travels as the record's message, so LogRecord's names are plain keys...
    assert line["name"] == "n" and line["args"] == "a" and line["message"] == "m"
    assert line["module"] == "mod" and line["msg"] == "x" and line["levelname"] == "lv"
    # ...while the line's own fields cannot be forged: the event's keys are renamed.
    assert line["level"] == "INFO" and line["level_"] == "forged"
    assert line["instance"] == "test" and line["instance_"] == "forged"
    assert line["layer"] == "app" and line["pid"] == os.getpid() and line["pid_"] == 1
    assert line["logger"] == "pcbuilder.unit"


def test_configure_logging_twice_writes_each_line_once(app, log_lines):
    path = app.config["APP_LOG_FILE"]
    configure_logging("test", path, "INFO")
    configure_logging("test", path, "INFO")
    names = [h.get_name() for h in logging.getLogger().handlers]
    assert names.count("pcbuilder-local") == 1
    structlog.get_logger("pcbuilder.unit").info("only.once")
    logging.getLogger("some.library").warning("stdlib %s", "too")
    assert len(log_lines("only.once")) == 1
    stdlib = log_lines("stdlib too")
    assert len(stdlib) == 1 and stdlib[0]["logger"] == "some.library"


def test_the_browser_file_exists_before_the_first_beacon(tmp_path):
    """Alloy looks for new files once a second: a file made at the first beacon would hold
    a new stack's first beacons back until then. The app's own file waits for its first line."""
    browser, app_file = tmp_path / "browser" / "b.log", tmp_path / "app" / "a.log"
    try:
        configure_logging("test", str(app_file), "INFO", browser_log_file=str(browser))
        assert browser.exists() and browser.read_bytes() == b""
        assert not app_file.exists()
    finally:
        configure_logging("test", None, "INFO")
