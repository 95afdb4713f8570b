"""Unit tests of the app's Loki shipping against an in-test stand-in for Loki's push API.

``FakeLoki`` is a wire-format stand-in (http.server in a thread on 127.0.0.1), not Loki:
it records what is POSTed to /loki/api/v1/push, answers with scripted statuses, or
accepts and never answers ("hang"). These tests are about what the app sends and how it
retries; what the real Loki makes of it is proven in tests/real/.
"""
from __future__ import annotations

import json
import logging
import sys
import threading
import time
import tracemalloc
import types

import pytest
import structlog

from pcbuilder import create_app, loki_shipping
from pcbuilder.logging_config import configure_logging
from pcbuilder.loki_backlog import ENTRY_OVERHEAD, Backlog
from tests.support.env import free_port
from tests.support.fake_loki import PUSH_PATH, FakeLoki
from tests.support.waiting import wait_until


pytestmark = pytest.mark.usefixtures("no_loki_env")


@pytest.fixture
def local_log(tmp_path):
    path = tmp_path / "app.log"

    def read(event: str | None = None) -> list[dict]:
        if not path.exists():
            return []
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [r for r in lines if event is None or r.get("event") == event]

    read.path = str(path)
    return read


def configure(local_log, url: str, monkeypatch, **env) -> loki_shipping.LokiHandler:
    defaults = {"LOKI_BATCH_INTERVAL": "0.05", "LOKI_TIMEOUT": "0.5", "LOKI_REPORT_INTERVAL": "0.2",
                "LOKI_SHUTDOWN_TIMEOUT": "2", "LOKI_MAX_BACKOFF": "0.2"}
    for name, value in {**defaults, **env}.items():
        monkeypatch.setenv(name, str(value))
    configure_logging("unit1", local_log.path, "INFO", loki_url=url, stack_env="ci")
    handler = loki_shipping.current()
    assert handler is not None and handler.sender is not None
    return handler


def in_thread(func, timeout: float = 30.0) -> None:
    """Run ``func``; fail (instead of hanging the suite) if it does not return."""
    done = threading.Event()
    errors = []

    def run():
        try:
            func()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(timeout), f"{func.__name__} did not return: logging blocked"
    assert not errors, errors


def reports(local_log) -> list[dict]:
    return local_log("loki.report")


def test_off_without_url(local_log):
    configure_logging("unit1", local_log.path, "INFO", loki_url="")
    assert loki_shipping.current() is None
    assert not any(h.get_name() == "pcbuilder-loki" for h in logging.getLogger().handlers)
    structlog.get_logger("t").info("local.only")
    assert [r["event"] for r in local_log()] == ["local.only"]


def test_backlog_is_bounded_in_bytes_and_drops_the_oldest():
    line = '{"event":"x"}'
    size = len(line) + ENTRY_OVERHEAD
    backlog = Backlog(max_bytes=10 * size)
    for i in range(25):
        backlog.append(i, line, {})
    assert len(backlog) == 10 and backlog.bytes == 10 * size
    assert [e[0] for e in backlog.entries] == list(range(15, 25))  # newest kept
    assert backlog.counters.dropped == {"overflow": 15}
    # a batch in flight still counts; a retried batch goes back in front, in order
    batch = backlog.take(4)
    backlog.append(25, line, {})
    assert backlog.bytes <= backlog.max_bytes
    backlog.put_back(batch)
    assert [e[0] for e in backlog.entries][:4] == [e[0] for e in batch]
    assert backlog.bytes <= backlog.max_bytes


def test_a_hung_push_never_makes_the_newest_line_the_one_dropped():
    """A push takes at most half the bound, so while it hangs the newest lines still fit and
    overflow drops the oldest queued ones; a single entry larger than that still goes."""
    line = '{"event":"x"}'
    size = len(line) + ENTRY_OVERHEAD
    backlog = Backlog(max_bytes=10 * size)
    for i in range(10):
        backlog.append(i, line, {})
    batch = backlog.take(1000, backlog.batch_bytes())
    assert [e[0] for e in batch] == [0, 1, 2, 3, 4]  # in flight, still counted
    for i in range(10, 30):
        backlog.append(i, line, {})
        assert backlog.entries[-1][0] == i and backlog.bytes <= backlog.max_bytes
    assert [e[0] for e in backlog.entries] == list(range(25, 30))
    assert Backlog(max_bytes=size).take(10, 1) == []  # nothing queued: nothing taken
    big = Backlog(max_bytes=10 * size)
    big.append(0, "y" * (8 * size), {})
    assert len(big.take(10, big.batch_bytes())) == 1


def test_lines_labels_metadata_and_timestamps(local_log, monkeypatch):
    with FakeLoki() as loki:
        configure(local_log, loki.url, monkeypatch)
        log = structlog.get_logger("pcbuilder.unit")
        structlog.contextvars.bind_contextvars(request_id="unit-rid-0001")
        try:
            t0 = time.time_ns()
            log.info("shipped.one", method="GET", path="/x", status=200, bytes=12)
            t1 = time.time_ns()
        finally:
            structlog.contextvars.clear_contextvars()
        log.info("shipped.two", timestamp="2001-01-01T00:00:00Z")
        entries = loki.wait_for(lambda: len(loki.entries()) >= 2 and loki.entries())

    assert loki.pushes[0]["path"] == PUSH_PATH
    assert loki.pushes[0]["headers"]["Content-Encoding"] == "gzip"
    labels, value = entries[0]
    assert labels == {"service_name": "pc-builder", "layer": "app", "instance": "unit1", "env": "ci",
                      "worker": "0"}  # outside uWSGI: worker 0
    ts, line, metadata = value
    assert metadata == {"request_id": "unit-rid-0001", "method": "GET", "path": "/x", "status": "200"}
    # the same bytes as the local line: rendered once, never parsed back
    local = open(local_log.path, encoding="utf-8").read().splitlines()
    assert line == local[0]
    line = json.loads(line)
    assert line["event"] == "shipped.one" and line["request_id"] == "unit-rid-0001"
    # entry time = record creation time in ns = the line's own "time" field
    assert t0 - 1000 <= int(ts) <= t1 + 1000
    from datetime import datetime
    line_us = round(datetime.fromisoformat(line["time"]).timestamp() * 1e6)
    assert abs(int(ts) // 1000 - line_us) <= 1
    # an ISO "timestamp" field in the event neither moves the entry time nor the line
    ts2, line2 = entries[1][1][0], json.loads(entries[1][1][1])
    assert line2["timestamp"] == "2001-01-01T00:00:00Z"
    assert int(ts2) >= int(ts)
    assert len(entries[1][1]) == 2  # no metadata outside a request


def test_non_serialisable_field_does_not_lose_the_batch(local_log, monkeypatch):
    class Unprintable:
        def __str__(self):
            raise RuntimeError("no str")

        def __repr__(self):
            raise RuntimeError("no repr")

    with FakeLoki() as loki:
        handler = configure(local_log, loki.url, monkeypatch, LOKI_BATCH_INTERVAL=0.5)
        log = structlog.get_logger("pcbuilder.unit")
        log.info("before")
        log.info("odd", obj=object(), a_set={1, 2}, bad=Unprintable(), nl="a\nb\"c")
        log.info("surrogate", value="\udcff")
        log.info("after")
        lines = loki.wait_for(lambda: len(loki.lines()) >= 4 and loki.lines())
        assert len(loki.pushes) == 1  # one batch, and it was not lost
        assert handler.backlog.counters.dropped == {}
    assert [r["event"] for r in lines] == ["before", "odd", "surrogate", "after"]
    odd = lines[1]
    assert odd["obj"].startswith("<object object")
    assert odd["bad"] == "__could_not_encode__"
    assert odd["nl"] == "a\nb\"c"
    assert lines[2]["value"] == "\udcff"


def test_request_threads_never_wait_for_a_hanging_loki_and_memory_stays_bounded(local_log, monkeypatch):
    bound = 200_000
    with FakeLoki(mode="hang") as loki:
        handler = configure(local_log, loki.url, monkeypatch, LOKI_BACKLOG_BYTES=bound,
                            LOKI_TIMEOUT=30)  # the push hangs far longer than the test
        log = structlog.get_logger("pcbuilder.unit")
        log.info("first")
        loki.wait_for(lambda: loki.posts >= 1)  # the sender is now stuck in a push
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]

        def burst():
            for i in range(5000):  # ~2.5 MB of lines: over ten times the bound
                log.info("burst", i=i, padding="p" * 300)

        in_thread(burst)
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        backlog = handler.backlog
        assert backlog.bytes <= bound
        assert grown <= bound * 1.5, f"{grown} bytes held for Loki with a {bound}-byte bound"
        assert backlog.counters.dropped["overflow"] > 0
        assert len(local_log("burst")) == 5000  # the local log has every line
        # shutdown with Loki still hanging is bounded, and says what was lost
        in_thread(lambda: handler.stop(timeout=1.0), timeout=15)
    report = reports(local_log)[-1]
    assert report["level"] == "WARNING" and report["logger"] == "pcbuilder.loki"
    assert report["dropped_total"]["overflow"] > 0 and report["dropped_total"]["shutdown"] > 0


def test_failed_pushes_are_retried_until_loki_is_back_in_order_and_once(local_log, monkeypatch):
    script = [(503, {}), (500, {}), (502, {})]
    with FakeLoki(script=script) as loki:
        handler = configure(local_log, loki.url, monkeypatch, LOKI_BATCH_SIZE=7)
        log = structlog.get_logger("pcbuilder.unit")
        for i in range(30):
            log.info("kept", i=i)
        loki.wait_for(lambda: [r["i"] for r in loki.lines() if r["event"] == "kept"] == list(range(30)))
        assert handler.backlog.counters.failed == {"http_5xx": 3}
        assert handler.backlog.counters.dropped == {}
        # the counters reach Loki too, once it is back
        shipped = loki.wait_for(lambda: [r for r in loki.lines() if r["event"] == "loki.report"])
    assert shipped[0]["failed"] == {"http_5xx": shipped[0]["failed"]["http_5xx"]}
    assert reports(local_log)[0]["failed_total"]["http_5xx"] >= 1


def test_429_waits_for_retry_after(local_log, monkeypatch):
    with FakeLoki(script=[(429, {"Retry-After": "1"})]) as loki:
        configure(local_log, loki.url, monkeypatch)
        structlog.get_logger("pcbuilder.unit").info("limited")
        loki.wait_for(lambda: [r for r in loki.lines() if r["event"] == "limited"])
        first, second = loki.post_times[:2]
    assert second - first >= 1.0


def test_400_is_not_retried_and_is_counted_as_rejected(local_log, monkeypatch):
    with FakeLoki(script=[(400, {})]) as loki:
        handler = configure(local_log, loki.url, monkeypatch)
        structlog.get_logger("pcbuilder.unit").info("refused")
        wait_until(lambda: handler.backlog.counters.dropped, 10, "the rejection")
        structlog.get_logger("pcbuilder.unit").info("next")
        loki.wait_for(lambda: [r for r in loki.lines() if r["event"] == "next"])
        assert handler.backlog.counters.dropped == {"rejected": 1}
    assert "refused" not in [r["event"] for r in loki.lines()]


def test_first_failure_is_reported_at_once_and_requests_are_unaffected(tmp_path, local_log, monkeypatch):
    url = f"http://127.0.0.1:{free_port()}{PUSH_PATH}"  # nothing listens: refused
    for name, value in {"LOKI_BATCH_INTERVAL": "0.05", "LOKI_REPORT_INTERVAL": "600"}.items():
        monkeypatch.setenv(name, value)
    app = create_app({"TESTING": True, "DATABASE": str(tmp_path / "db.sqlite3"),
                      "APP_LOG_FILE": local_log.path, "INSTANCE_NAME": "unit1", "LOKI_URL": url})
    handler = loki_shipping.current()
    assert handler is not None and handler.sender is not None
    client = app.test_client()
    for _ in range(5):
        assert client.get("/pc-builder-app/healthz").status_code == 200
    report = wait_until(lambda: reports(local_log), 10, "a report")[0]  # long before 600 s
    assert report["failed"]["unreachable"] >= 1 and "Connection" in report["error"]
    assert report["backlog_lines"] >= 1  # kept for a retry, not thrown away
    assert len(local_log("request.finished")) == 5


def test_shutdown_flushes_what_is_queued(local_log, monkeypatch):
    with FakeLoki() as loki:
        handler = configure(local_log, loki.url, monkeypatch, LOKI_BATCH_INTERVAL=60)
        log = structlog.get_logger("pcbuilder.unit")
        for i in range(25):
            log.info("queued", i=i)
        assert loki.entries() == []
        backlog = handler.backlog
        handler.stop(timeout=5)
        assert [r["i"] for r in loki.lines()] == list(range(25))
        assert backlog.counters.sent_lines == 25
        log.info("after.stop")  # detached: not shipped, still local
        assert local_log("after.stop")
    assert len(loki.lines()) == 25


def test_reconfigure_keeps_one_handler_and_no_duplicates(local_log, monkeypatch):
    with FakeLoki() as loki:
        first = configure(local_log, loki.url, monkeypatch)
        second = configure(local_log, loki.url, monkeypatch)
        assert first is not second and first.sender is None and second.sender is not None
        names = [h.get_name() for h in logging.getLogger().handlers]
        assert names.count("pcbuilder-loki") == 1 and names.count("pcbuilder-local") == 1
        structlog.get_logger("pcbuilder.unit").info("once")
        loki.wait_for(lambda: any(r["event"] == "once" for r in loki.lines()))
        time.sleep(0.2)
        assert [r["event"] for r in loki.lines()].count("once") == 1
        assert len(local_log("once")) == 1


def test_under_uwsgi_master_nothing_ships_until_after_fork(local_log, monkeypatch):
    """With a stand-in ``uwsgi`` module whose worker_id() is 0 (the master), configure
    starts no thread and ships nothing; the post-fork hook starts shipping."""
    fake = types.ModuleType("uwsgi")
    fake.worker_id = lambda: 0
    fake.masterpid = lambda: 1
    monkeypatch.setitem(sys.modules, "uwsgi", fake)
    monkeypatch.delitem(sys.modules, "uwsgidecorators", raising=False)
    monkeypatch.setattr(loki_shipping, "_postfork_installed", False)
    monkeypatch.setattr(loki_shipping, "_exit_hooked_pid", None)
    with FakeLoki() as loki:
        monkeypatch.setenv("LOKI_BATCH_INTERVAL", "0.05")
        before = {t.name for t in threading.enumerate()}
        configure_logging("unit1", local_log.path, "INFO", loki_url=loki.url)
        handler = loki_shipping.current()
        assert handler is not None and handler.sender is None
        assert {t.name for t in threading.enumerate()} == before
        structlog.get_logger("pcbuilder.unit").info("in.master")  # local only

        fake.post_fork_hook()  # what uWSGI calls in each worker after fork
        assert handler.sender is not None
        assert "loki-sender" in {t.name for t in threading.enumerate()}
        structlog.get_logger("pcbuilder.unit").info("in.worker")
        lines = loki.wait_for(lambda: loki.lines())
        assert [r["event"] for r in lines] == ["in.worker"]
        assert callable(fake.atexit)
    monkeypatch.delitem(sys.modules, "uwsgidecorators", raising=False)
