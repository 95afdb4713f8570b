"""Unit tests of pcbuilder.loki_shipping against an in-test stand-in for Loki's push API.

``FakeLoki`` is a wire-format stand-in (http.server in a thread on 127.0.0.1), not Loki:
it records what is POSTed to /loki/api/v1/push, or accepts and never answers ("hang").
"""
from __future__ import annotations

import gzip
import json
import logging
import sys
import threading
import time
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import structlog

from pcbuilder import create_app, loki_shipping
from pcbuilder.logging_config import configure_logging, json_formatter
from tests.stack_runner import free_port
from tests.waiting import wait_until

PUSH_PATH = "/loki/api/v1/push"


class FakeLoki:
    """Records pushes; ``mode="hang"`` reads the request and never answers (until stop)."""

    def __init__(self, mode: str = "ok"):
        self.mode = mode
        self.pushes: list[dict] = []
        self.posts = 0
        self.release = threading.Event()
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with fake.lock:
                    fake.posts += 1
                if fake.mode == "hang":
                    fake.release.wait()
                    return
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                payload = json.loads(body)
                with fake.lock:
                    fake.pushes.append({"path": self.path, "headers": dict(self.headers),
                                        "body": payload})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{PUSH_PATH}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def entries(self) -> list[tuple[dict, list]]:
        """(stream labels, value) for every entry received so far."""
        with self.lock:
            pushes = list(self.pushes)
        return [(s["stream"], v) for p in pushes for s in p["body"]["streams"] for v in s["values"]]

    def lines(self) -> list[dict]:
        return [json.loads(v[1]) for _, v in self.entries()]

    def wait_for(self, predicate, timeout: float = 10.0):
        return wait_until(predicate, timeout, "the fake Loki")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ["LOKI_URL", "LOKI_QUEUE_SIZE", "LOKI_BATCH_INTERVAL", "LOKI_TIMEOUT",
                 "LOKI_BATCH_SIZE", "LOKI_SHUTDOWN_TIMEOUT", "LOKI_REPORT_INTERVAL", "STACK_ENV"]:
        monkeypatch.delenv(name, raising=False)
    yield
    loki_shipping.configure(None, json_formatter("test"))


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


def configure(local_log, url: str, monkeypatch, **env) -> loki_shipping.LokiShipper:
    defaults = {"LOKI_BATCH_INTERVAL": "0.05", "LOKI_TIMEOUT": "0.5", "LOKI_REPORT_INTERVAL": "0.2",
                "LOKI_SHUTDOWN_TIMEOUT": "2"}
    for name, value in {**defaults, **env}.items():
        monkeypatch.setenv(name, str(value))
    configure_logging("unit1", local_log.path, "INFO", loki_url=url, stack_env="ci")
    shipper = loki_shipping.current()
    assert shipper is not None and shipper.started
    return shipper


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


def test_off_without_url(local_log):
    configure_logging("unit1", local_log.path, "INFO", loki_url="")
    assert loki_shipping.current() is None
    assert not any(h.get_name() == "pcbuilder-loki" for h in logging.getLogger().handlers)
    structlog.get_logger("t").info("local.only")
    assert [r["event"] for r in local_log()] == ["local.only"]


def test_full_queue_drops_and_counts_without_blocking():
    import queue

    stats = loki_shipping.ShippingStats()
    handler = loki_shipping.DroppingQueueHandler(queue.Queue(maxsize=3), stats)
    logger = logging.getLogger("pcbuilder.unit.dropping")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for i in range(10):
            logger.warning("line %d", i)
    finally:
        logger.removeHandler(handler)
    assert handler.queue.qsize() == 3
    assert stats.dropped == 7
    first = handler.queue.get_nowait()
    assert first.getMessage() == "line 0" and first.args is None


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
    assert labels == {"service_name": "pc-builder", "layer": "app", "instance": "unit1", "env": "ci"}
    ts, line, metadata = value
    line = json.loads(line)
    assert metadata == {"request_id": "unit-rid-0001", "method": "GET", "path": "/x", "status": "200"}
    assert line["event"] == "shipped.one" and line["request_id"] == "unit-rid-0001"
    # the same JSON object as the local line
    assert line == local_log("shipped.one")[0]
    # entry time = record creation time in ns = the line's own "time" field
    assert t0 - 1000 <= int(ts) <= t1 + 1000
    from datetime import datetime
    line_us = int(datetime.fromisoformat(line["time"]).timestamp() * 1e6)
    assert abs(int(ts) // 1000 - line_us) <= 1
    # an ISO "timestamp" field in the event neither moves the entry time nor the line
    ts2, line2 = entries[1][1][0], json.loads(entries[1][1][1])
    assert line2["timestamp_"] == "2001-01-01T00:00:00Z"
    assert int(ts2) >= int(ts)
    assert len(entries[1][1]) == 2  # no metadata outside a request


def test_non_serialisable_field_does_not_lose_the_batch(local_log, monkeypatch):
    class Unprintable:
        def __str__(self):
            raise RuntimeError("no str")

        def __repr__(self):
            raise RuntimeError("no repr")

    with FakeLoki() as loki:
        shipper = configure(local_log, loki.url, monkeypatch, LOKI_BATCH_INTERVAL=0.5)
        log = structlog.get_logger("pcbuilder.unit")
        log.info("before")
        log.info("odd", obj=object(), a_set={1, 2}, raw=b"\xff\x00", bad=Unprintable(),
                 surrogate="\udcff", nl="a\nb\"c")
        log.info("after")
        lines = loki.wait_for(lambda: len(loki.lines()) >= 3 and loki.lines())
        assert len(loki.pushes) == 1  # one batch, and it was not lost
        assert shipper.stats.failed_batches == 0 and shipper.stats.lost_lines == 0
    assert [r["event"] for r in lines] == ["before", "odd", "after"]
    odd = lines[1]
    assert odd["obj"].startswith("<object object")
    assert odd["bad"] == "__could_not_encode__"
    assert odd["nl"] == "a\nb\"c"
    assert odd["surrogate"] == "\udcff"


def test_hanging_loki_does_not_block_logging_and_memory_stays_bounded(local_log, monkeypatch):
    with FakeLoki(mode="hang") as loki:
        shipper = configure(local_log, loki.url, monkeypatch, LOKI_QUEUE_SIZE=50,
                            LOKI_TIMEOUT=30)  # the post would hang far longer than the test
        log = structlog.get_logger("pcbuilder.unit")
        log.info("first")
        loki.wait_for(lambda: loki.posts >= 1)  # the sender is now stuck in a post

        def burst():
            for i in range(3000):
                log.info("burst", i=i)

        in_thread(burst)
        assert shipper.stats.dropped > 0
        assert shipper.queue.qsize() <= 50
        assert shipper.loki.buffer.qsize() <= 50
        # the local log has every line
        assert len(local_log("burst")) == 3000
        # and says how many did not make it to Loki
        reports = loki.wait_for(lambda: local_log("loki.dropped"))
        assert reports[0]["level"] == "WARNING" and reports[0]["dropped"] > 0
        assert reports[0]["logger"] == "pcbuilder.loki"
        # shutdown with Loki still hanging is bounded
        in_thread(lambda: shipper.stop(timeout=1.0), timeout=15)
    assert all(r["event"] != "loki.dropped" for r in loki.lines())


def test_refused_port_counts_failures_and_the_app_is_unaffected(tmp_path, local_log, monkeypatch):
    url = f"http://127.0.0.1:{free_port()}{PUSH_PATH}"
    for name, value in {"LOKI_BATCH_INTERVAL": "0.05", "LOKI_REPORT_INTERVAL": "0.2"}.items():
        monkeypatch.setenv(name, value)
    app = create_app({"TESTING": True, "DATABASE": str(tmp_path / "db.sqlite3"),
                      "APP_LOG_FILE": local_log.path, "INSTANCE_NAME": "unit1", "LOKI_URL": url})
    shipper = loki_shipping.current()
    assert shipper is not None and shipper.started
    client = app.test_client()
    for _ in range(5):
        assert client.get("/pc-builder-app/healthz").status_code == 200
    reports = _wait(lambda: local_log("loki.send_failed"))
    assert reports[0]["failed_batches"] >= 1 and reports[0]["lost_lines"] >= 1
    assert "ConnectionError" in reports[0]["error"] or "Connection" in reports[0]["error"]
    assert shipper.stats.failed_batches >= 1
    assert len(local_log("request.finished")) == 5


def test_shutdown_flushes_what_is_queued(local_log, monkeypatch):
    with FakeLoki() as loki:
        shipper = configure(local_log, loki.url, monkeypatch, LOKI_BATCH_INTERVAL=60)
        log = structlog.get_logger("pcbuilder.unit")
        for i in range(25):
            log.info("queued", i=i)
        assert loki.entries() == []
        shipper.stop(timeout=5)
        assert [r["i"] for r in loki.lines()] == list(range(25))
        assert shipper.stats.sent_lines == 25
        log.info("after.stop")  # detached: not shipped, still local
        assert local_log("after.stop")
    assert len(loki.lines()) == 25


def test_reconfigure_keeps_one_shipper_and_no_duplicates(local_log, monkeypatch):
    with FakeLoki() as loki:
        first = configure(local_log, loki.url, monkeypatch)
        second = configure(local_log, loki.url, monkeypatch)
        assert first is not second and first._stopped and second.started
        names = [h.get_name() for h in logging.getLogger().handlers]
        assert names.count("pcbuilder-loki") == 1 and names.count("pcbuilder-local") == 1
        structlog.get_logger("pcbuilder.unit").info("once")
        loki.wait_for(lambda: any(r["event"] == "once" for r in loki.lines()))
        time.sleep(0.2)
        assert [r["event"] for r in loki.lines()].count("once") == 1
        assert len(local_log("once")) == 1


def test_under_uwsgi_master_threads_start_only_after_fork(local_log, monkeypatch):
    """With a stand-in ``uwsgi`` module whose worker_id() is 0 (the master), configure
    starts nothing and registers a post-fork hook; the hook starts shipping."""
    fake = types.ModuleType("uwsgi")
    fake.worker_id = lambda: 0
    fake.masterpid = lambda: 1
    monkeypatch.setitem(sys.modules, "uwsgi", fake)
    monkeypatch.delitem(sys.modules, "uwsgidecorators", raising=False)
    monkeypatch.setattr(loki_shipping, "_postfork_installed", False)
    monkeypatch.setattr(loki_shipping, "_exit_registered", set())
    with FakeLoki() as loki:
        monkeypatch.setenv("LOKI_BATCH_INTERVAL", "0.05")
        before = {t.name for t in threading.enumerate()}
        configure_logging("unit1", local_log.path, "INFO", loki_url=loki.url)
        shipper = loki_shipping.current()
        assert shipper is not None and not shipper.started
        assert {t.name for t in threading.enumerate()} == before
        assert "pcbuilder-loki" not in [h.get_name() for h in logging.getLogger().handlers]
        structlog.get_logger("pcbuilder.unit").info("in.master")  # local only

        fake.post_fork_hook()  # what uWSGI calls in each worker after fork
        assert shipper.started
        assert "loki-listener" in {t.name for t in threading.enumerate()}
        structlog.get_logger("pcbuilder.unit").info("in.worker")
        lines = loki.wait_for(lambda: loki.lines())
        assert [r["event"] for r in lines] == ["in.worker"]
        assert callable(fake.atexit)
    monkeypatch.delitem(sys.modules, "uwsgidecorators", raising=False)


def _wait(predicate, timeout: float = 10.0):
    return wait_until(predicate, timeout)
