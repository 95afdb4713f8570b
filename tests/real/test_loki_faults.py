"""Loki stopped, hanging and restarted under load, on ``./stack`` with the real Loki and Alloy.

Each fault runs while requests flow (tests/support/load.py); afterwards every request id of
the load is in Loki exactly once per layer: the app's own line (its shipper kept it in its
backlog and retried), NGINX's and uWSGI's (Alloy kept its read position and retried).
Requests never notice. A hang is SIGSTOP on the real Loki process: the kernel still
accepts connections, nothing answers, until SIGCONT.

The last test shrinks the app's backlog (LOKI_BACKLOG_BYTES) under a hang: its memory stays
bounded, the oldest lines are dropped and counted, and Alloy still delivers every NGINX
and uWSGI line.
"""
from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager

import pytest

from tests.support.dashboards import loki_targets
from tests.support.load import Load
from tests.support.real import loki_of, start_real_stack
from tests.support.stack import stop_stack

pytestmark = [pytest.mark.real, pytest.mark.integration]

LAYERS = ("nginx", "uwsgi", "app")
# Long enough for several failed pushes from every sender (the app's timeout and backoff
# below, Alloy's 10 s timeout), short enough to stay well inside the app's backlog.
FAULT_S = 12
SHIPPING = dict(LOKI_TIMEOUT="2", LOKI_MAX_BACKOFF="1", LOKI_REPORT_INTERVAL="1")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = start_real_stack(tmp_path_factory.mktemp("loki-faults"), **SHIPPING)
    try:
        yield running
    finally:
        stop_stack(running)


def app_reports(stack) -> list[dict]:
    return [r for r in stack.records("app") if r.get("event") == "loki.report"]


@contextmanager
def load_across(stack, prefix: str):
    """Requests before, during and after the fault the ``with`` body causes."""
    with Load(stack, prefix, threads=3, pause_s=0.01) as load:
        time.sleep(2)
        yield load
        time.sleep(3)
    assert load.failures == [], load.failures[:5]
    assert len(load.sent) > 100


def assert_each_id_once_per_layer(stack, prefix: str, sent: list[str]) -> None:
    counts = loki_of(stack).wait_for_ids(sent, prefix, LAYERS, timeout=120)
    for layer in LAYERS:
        assert set(counts[layer]) == set(sent), f"{layer}: ids in Loki that were never sent"
        assert {rid: n for rid, n in counts[layer].items() if n != 1} == {}, f"{layer}: not exactly once"


def test_loki_stopped_under_load_loses_and_duplicates_nothing(stack):
    before = len(app_reports(stack))
    with load_across(stack, "down") as load:
        stack.supervisorctl("stop", "loki")
        time.sleep(FAULT_S)
        stack.supervisorctl("start", "loki")
    assert_each_id_once_per_layer(stack, "down-", load.sent)
    # the app said what happened, in its file and (once Loki was back) in Loki
    reports = app_reports(stack)[before:]
    failed = [r for r in reports if r["failed"].get("unreachable")]
    assert failed, reports[:3]
    assert failed[0]["level"] == "WARNING" and failed[0]["logger"] == "pcbuilder.loki"
    assert "Connection" in failed[0]["error"] and failed[0]["backlog_lines"] >= 1  # kept for a retry
    assert not any(r["dropped_total"] for r in reports), "the default backlog must hold an outage this short"
    shipped = loki_of(stack).wait_for('{service_name="pc-builder", layer="app"} |= "loki.report"',
                                      lambda es: any(e.json()["failed"].get("unreachable") for e in es),
                                      what="the app's failure report in Loki")
    assert all(e.json()["event"] == "loki.report" for e in shipped)


def test_loki_hanging_under_load_loses_and_duplicates_nothing(stack):
    before = len(app_reports(stack))
    with load_across(stack, "hang") as load:
        pid = stack.pid("loki")
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(FAULT_S)
        finally:
            os.kill(pid, signal.SIGCONT)
    assert_each_id_once_per_layer(stack, "hang-", load.sent)
    reports = app_reports(stack)[before:]
    assert any(r["failed"].get("timeout") for r in reports), reports[:3]
    assert not any(r["dropped_total"] for r in reports)


def test_loki_restarted_under_load_loses_and_duplicates_nothing(stack):
    old = stack.pid("loki")
    with load_across(stack, "restart") as load:
        stack.supervisorctl("restart", "loki")
    assert stack.pid("loki") != old
    assert_each_id_once_per_layer(stack, "restart-", load.sent)
    # what Loki held before the restart is still there, once
    earlier = [r["request_id"] for r in stack.records("nginx") if r["request_id"].startswith("hang-")]
    assert_each_id_once_per_layer(stack, "hang-", earlier)


def test_a_hang_keeps_the_apps_memory_bounded_and_alloy_loses_nothing(tmp_path):
    """A backlog of 20,000 bytes per worker: the app drops its oldest lines and counts them
    (``overflow``) instead of growing; Alloy, which reads files, waits and loses nothing."""
    stack = start_real_stack(tmp_path, LOKI_BACKLOG_BYTES="20000", **SHIPPING)
    try:
        pid = stack.pid("loki")
        os.kill(pid, signal.SIGSTOP)
        try:
            with Load(stack, "bounded", threads=4, max_requests=400) as load:
                load.wait()
            assert load.failures == [] and len(load.sent) == 400
            dropped = stack.wait_for(lambda: [r for r in app_reports(stack) if r["dropped_total"]],
                                     timeout=30, what="dropped lines reported in the app's file")
        finally:
            os.kill(pid, signal.SIGCONT)
        assert dropped[0]["dropped_total"]["overflow"] > 0
        assert all(r["backlog_bytes"] <= 20000 for r in app_reports(stack))
        assert any(r["failed"].get("timeout") for r in app_reports(stack))
        local = {r.get("request_id") for r in stack.records("app") if r.get("event") == "request.finished"}
        assert set(load.sent) <= local  # the app's own file has every line

        loki = loki_of(stack)
        counts = loki.wait_for_ids(load.sent, "bounded-", ("nginx", "uwsgi"), timeout=120)
        for layer in ("nginx", "uwsgi"):
            assert dict(counts[layer]) == {rid: 1 for rid in load.sent}, f"{layer}: not exactly once"
        # the app's newest lines arrive once Loki answers again, each once; the rest was counted
        app = loki.wait_for_ids([load.sent[-1]], "bounded-", ("app",), timeout=60)["app"]
        assert set(app) <= set(load.sent) and set(app.values()) == {1}
        assert len(app) < len(load.sent)
        # and the overview shows the drops, once the reports reach Loki
        (overflow,) = [t for t in loki_targets({"env": "local"})
                       if t.where == "stack-overview.json / Lines the app's shipper dropped (loki.report) / O"]
        series = stack.wait_for(lambda: loki.answer(overflow, time.time() - 600, time.time()), timeout=60,
                                what="the dropped-lines panel's data")
        assert sum(float(v) for s in series for _, v in s["values"]) > 0
    finally:
        stop_stack(stack)
