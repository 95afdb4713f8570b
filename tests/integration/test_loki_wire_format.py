"""App -> Loki from real uWSGI workers: a wire-format check of Loki's push API, not Loki.

An in-test HTTP server (tests.test_loki_shipping.FakeLoki: http.server in a thread on a
free 127.0.0.1 port) records what the app POSTs to /loki/api/v1/push; a real stack
(nginx + 2 uWSGI instances x 2 forked workers, ./stack up -d) runs with LOKI_URL
pointing at it. Then "Loki down": LOKI_URL at a refused port, at a server that accepts
and never answers, and at one that fails for a while and then comes back: requests must
still succeed, the local log must carry the counters, and lines kept while Loki was
away must arrive once it is back. Every server and stack started here is stopped here.
"""
from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest

from tests.support.env import free_port
from tests.support.stack import start_stack, stop_stack
from tests.support.fake_loki import PUSH_PATH, FakeLoki

pytestmark = pytest.mark.integration

LABELS = {"service_name", "layer", "instance", "env"}
PROCESSES = 2


def worker_pids(stack) -> dict[str, set[int]]:
    """{instance: pids of its uWSGI workers}: children of each instance's master."""
    masters = {p["name"]: p["pid"] for p in stack.status().get("processes", [])
               if p.get("name", "").startswith("app") and p.get("pid")}
    children: dict[int, set[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, set()).add(int(entry.name))
    return {name: children.get(pid, set()) for name, pid in masters.items()}


def burst(stack, prefix: str, count: int, concurrency: int = 16) -> list[tuple[str, int, int, int]]:
    """``count`` concurrent requests with chosen ids: [(rid, status, t_before_ns, t_after_ns)]."""
    def one(i: int):
        rid = f"{prefix}-{i:04d}-{uuid.uuid4().hex[:8]}"
        t0 = time.time_ns()
        resp = stack.request("/pc-builder-app/main",
                             headers={"X-Request-ID": rid}, timeout=30)
        t1 = time.time_ns()
        assert resp.headers.get("X-Request-ID") == rid
        return rid, resp.status, t0, t1

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, range(count)))


@pytest.fixture(scope="module")
def fake_loki():
    with FakeLoki() as loki:
        yield loki


@pytest.fixture(scope="module")
def shipping_stack(tmp_path_factory, fake_loki):
    stack = start_stack(tmp_path_factory.mktemp("loki-wire"), LOKI_URL=fake_loki.url,
                        LOKI_BATCH_INTERVAL="0.2", STACK_ENV="itest",
                        UWSGI_PROCESSES=str(PROCESSES))
    try:
        yield stack
    finally:
        stop_stack(stack)


def test_wire_format_from_every_uwsgi_worker(shipping_stack, fake_loki):
    stack = shipping_stack
    workers = worker_pids(stack)
    assert set(workers) == {"app1", "app2"} and all(len(p) == PROCESSES for p in workers.values())

    done = burst(stack, "wire", 240)
    assert all(status == 200 for _, status, _, _ in done)
    rids = {rid: (t0, t1) for rid, _, t0, t1 in done}

    def shipped():
        got = {}
        for labels, value in fake_loki.entries():
            if len(value) == 3 and value[2].get("request_id") in rids:
                got.setdefault(value[2]["request_id"], []).append((labels, value))
        finished = {r for r, es in got.items()
                    if any('"request.finished"' in v[1] for _, v in es)}
        return got if finished == set(rids) else None

    got = stack.wait_for(shipped, timeout=30, what="every request's lines at the fake Loki")

    assert {p["path"] for p in fake_loki.pushes} == {PUSH_PATH}
    assert all(p["headers"]["Content-Type"] == "application/json" for p in fake_loki.pushes)
    seen_workers: dict[str, set[int]] = {}
    for rid, entries in got.items():
        t0, t1 = rids[rid]
        events = []
        for labels, (ts, line, metadata) in entries:
            # labels: exactly the four low-cardinality ones; the request id never a label
            assert set(labels) == LABELS, labels
            assert labels["service_name"] == "pc-builder" and labels["layer"] == "app"
            assert labels["env"] == "itest" and labels["instance"] in ("app1", "app2")
            # structured metadata: the request id (and method/path/status where present)
            assert metadata["request_id"] == rid
            assert set(metadata) <= {"request_id", "method", "path", "status"}
            assert all(isinstance(v, str) for v in metadata.values())
            # nanosecond timestamp string: the record's creation time, inside the request
            assert ts.isdigit() and len(ts) == 19
            assert t0 - 1_000 <= int(ts) <= t1 + 1_000, (rid, ts, t0, t1)
            record = json.loads(line)
            line_us = round(datetime.fromisoformat(record["time"]).timestamp() * 1e6)
            assert abs(int(ts) // 1000 - line_us) <= 1
            assert record["request_id"] == rid and record["layer"] == "app"
            assert record["instance"] == labels["instance"]
            events.append(record["event"])
            seen_workers.setdefault(labels["instance"], set()).add(record["pid"])
        assert events == ["request.finished"]  # one wide event per request at INFO
        finished = next(v for _, v in entries if '"request.finished"' in v[1])
        assert finished[2] == {"request_id": rid, "method": "GET",
                               "path": "/pc-builder-app/main", "status": "200"}

    # Shipping works after fork in every worker of both instances.
    assert seen_workers == workers, (seen_workers, workers)
    # The local JSON file is unchanged: every request is there too.
    local = {r.get("request_id") for r in stack.records("app") if r.get("event") == "request.finished"}
    assert set(rids) <= local
    assert not [r for r in stack.records("app") if r.get("event") == "loki.report"]


def test_shutdown_flushes_what_workers_still_hold(tmp_path):
    """Batch interval of an hour: lines reach the fake Loki only through the exit flush."""
    with FakeLoki() as loki:
        stack = start_stack(tmp_path, LOKI_URL=loki.url, LOKI_BATCH_INTERVAL="3600",
                            UWSGI_PROCESSES=str(PROCESSES))
        try:
            done = burst(stack, "flush", 40)
            assert all(status == 200 for _, status, _, _ in done)
            assert not [e for e in loki.entries() if len(e[1]) == 3
                        and e[1][2]["request_id"].startswith("flush-")]
        finally:
            stop_stack(stack)
        shipped = {v[2]["request_id"] for _, v in loki.entries()
                   if len(v) == 3 and '"request.finished"' in v[1]}
    assert {rid for rid, _, _, _ in done} <= shipped


def loki_down_stack(base: Path, url: str, **env):
    settings = dict(LOKI_BACKLOG_BYTES="20000", LOKI_BATCH_INTERVAL="0.2", LOKI_TIMEOUT="2",
                    LOKI_REPORT_INTERVAL="1", LOKI_SHUTDOWN_TIMEOUT="2", LOKI_MAX_BACKOFF="1",
                    UWSGI_PROCESSES=str(PROCESSES))
    return start_stack(base, LOKI_URL=url, **{**settings, **env})


def reports(stack, event: str) -> list[dict]:
    return [r for r in stack.records("app") if r.get("event") == event]


def test_loki_refusing_connections_does_not_touch_requests(tmp_path):
    stack = loki_down_stack(tmp_path, f"http://127.0.0.1:{free_port()}{PUSH_PATH}")
    try:
        done = burst(stack, "refused", 200)
        assert all(status == 200 for _, status, _, _ in done)
        failed = stack.wait_for(lambda: reports(stack, "loki.report"), timeout=15,
                                what="loki.report in the local log")
        assert failed[0]["level"] == "WARNING" and failed[0]["logger"] == "pcbuilder.loki"
        assert failed[0]["failed"]["unreachable"] >= 1 and "Connection" in failed[0]["error"]
        assert failed[0]["backlog_lines"] >= 1  # kept for a retry
        local = {r.get("request_id") for r in stack.records("app")}
        assert {rid for rid, _, _, _ in done} <= local
    finally:
        stop_stack(stack)


def test_loki_that_never_answers_does_not_touch_requests(tmp_path):
    with FakeLoki(mode="hang") as loki:
        stack = loki_down_stack(tmp_path, loki.url)
        try:
            done = burst(stack, "hang", 400)
            assert all(status == 200 for _, status, _, _ in done)
            assert loki.posts >= 1  # the senders are stuck in a post that never ends
            dropped = stack.wait_for(
                lambda: [r for r in reports(stack, "loki.report") if r["dropped_total"]],
                timeout=20, what="dropped lines reported in the local log")
            assert dropped[0]["dropped_total"]["overflow"] > 0
            assert dropped[0]["backlog_bytes"] <= 20000
            assert any(r["failed"].get("timeout") for r in reports(stack, "loki.report"))
            local = {r.get("request_id") for r in stack.records("app")}
            assert {rid for rid, _, _, _ in done} <= local
        finally:
            stop_stack(stack)


def test_lines_kept_while_loki_fails_arrive_once_it_is_back(tmp_path):
    """Loki answers 503 to the first 12 pushes (of any worker), then accepts: every
    request's line arrives, exactly once; the failures are counted and shipped too."""
    with FakeLoki(script=[(503, {})] * 12) as loki:
        stack = loki_down_stack(tmp_path, loki.url, LOKI_BACKLOG_BYTES="8000000")
        try:
            done = burst(stack, "back", 200)
            assert all(status == 200 for _, status, _, _ in done)
            rids = {rid for rid, _, _, _ in done}

            def delivered():
                got = [v[2]["request_id"] for _, v in loki.entries()
                       if len(v) == 3 and v[2].get("request_id") in rids]
                return got if set(got) == rids else None

            got = stack.wait_for(delivered, timeout=60, what="every line after the outage")
            assert sorted(got) == sorted(rids)  # each exactly once
            shipped_reports = stack.wait_for(
                lambda: [r for r in loki.lines() if r["event"] == "loki.report"], timeout=30,
                what="the failure counters at the fake Loki")
            assert sum(r["failed"].get("http_5xx", 0) for r in shipped_reports) >= 1
            assert not any(r["dropped_total"] for r in reports(stack, "loki.report"))
        finally:
            stop_stack(stack)
