"""App -> Loki's push API from real uWSGI workers: a wire-format check only, not Loki.

An in-test HTTP server (tests/support/fake_loki.py: http.server in a thread on a free
127.0.0.1 port) records the bytes the app POSTs to /loki/api/v1/push from a real stack
(nginx + 2 uWSGI instances x 2 forked workers, ./stack up -d): headers, labels,
nanosecond timestamps, structured metadata, one push per batch from every worker.
What Loki makes of them (delivery, labels as a query sees them, outages, restarts, the
exit flush) is proven against the real Loki in tests/real/.
"""
from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest

from tests.support.stack import start_stack, stop_stack
from tests.support.fake_loki import PUSH_PATH, FakeLoki

pytestmark = pytest.mark.integration

LABELS = {"service_name", "layer", "instance", "env", "worker"}
PROCESSES = 2


def record_worker(line: str) -> int:
    """The uWSGI worker id a ``request.finished`` line names."""
    return json.loads(line)["worker"]


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
    stream_pids: dict[tuple, set[int]] = {}
    for rid, entries in got.items():
        t0, t1 = rids[rid]
        events = []
        for labels, (ts, line, metadata) in entries:
            # labels: exactly the low-cardinality ones; the request id never a label
            assert set(labels) == LABELS, labels
            assert labels["worker"] == str(record_worker(line)), labels
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
            stream_pids.setdefault(tuple(sorted(labels.items())), set()).add(record["pid"])
        assert events == ["request.finished"]  # one wide event per request at INFO
        finished = next(v for _, v in entries if '"request.finished"' in v[1])
        assert finished[2] == {"request_id": rid, "method": "GET",
                               "path": "/pc-builder-app/main", "status": "200"}

    # Shipping works after fork in every worker of both instances, each in a stream of its
    # own (two senders on one stream can lose lines in Loki's WAL replay: docs/logs.md).
    assert seen_workers == workers, (seen_workers, workers)
    assert len(stream_pids) == sum(len(p) for p in workers.values())
    assert all(len(pids) == 1 for pids in stream_pids.values()), stream_pids
    # The local JSON file is unchanged: every request is there too.
    local = {r.get("request_id") for r in stack.records("app") if r.get("event") == "request.finished"}
    assert set(rids) <= local
    assert not [r for r in stack.records("app") if r.get("event") == "loki.report"]
