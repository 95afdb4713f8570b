"""``./stack`` with the real Loki and Alloy: one command runs the whole log path.

Real Loki 3.7 and Alloy 1.10 (tests/support/real.py), the project's own configs
(observability/loki/loki.yaml, observability/alloy/config.alloy), real NGINX and uWSGI.
``up`` starts and reports them, ``down`` stops them last (after the app's exit flush), and
Loki keeps its data across ``down`` and ``up``. The app's batch interval is an hour here,
so its lines reach Loki only through the flush every worker makes when it exits.
"""
from __future__ import annotations

import os
import time

import pytest

from tests.support.load import Load
from tests.support.real import loki_of, start_real_stack
from tests.support.stack import stop_stack

pytestmark = [pytest.mark.real, pytest.mark.integration]

LAYERS = ("nginx", "uwsgi", "app")


def test_up_runs_loki_and_alloy_down_flushes_into_them_and_up_again_keeps_the_data(tmp_path):
    stack = start_real_stack(tmp_path, LOKI_BATCH_INTERVAL="3600", UWSGI_PROCESSES="2")
    try:
        base = f"http://127.0.0.1:{stack.env['LOKI_PORT']}"
        assert f"starting Loki ({stack.env['LOKI_BIN']}) at {base}" in stack.start_output
        assert "Alloy (" in stack.start_output
        status = {p["name"]: p for p in stack.status()["processes"]}
        assert status["loki"]["health"] == "ready" and status["alloy"]["health"] == "ready", status

        prefix = f"flush-{os.getpid()}"
        with Load(stack, prefix, threads=4, max_requests=40) as load:
            load.wait()
        assert load.failures == []
        loki = loki_of(stack)
        loki.wait_for_ids(load.sent, prefix, ("nginx", "uwsgi"), timeout=60)  # Alloy: at once
        time.sleep(2)
        assert loki.ids_by_layer(prefix, ("app",))["app"] == {}, "the app pushed before its exit"

        # down: the app's workers flush at exit, then Alloy and Loki stop (in that order)
        stack.run("down")
        assert "loki" not in {p["name"] for p in stack.status().get("processes", [])}
        stack.start_output = stack.run("up", "-d", timeout=180).stdout
        counts = loki.wait_for_ids(load.sent, prefix, LAYERS, timeout=30)
        for layer in LAYERS:
            assert dict(counts[layer]) == {rid: 1 for rid in load.sent}, f"{layer}: not exactly once"
    finally:
        stop_stack(stack)
