"""``./stack`` with the real Loki and Alloy: one command runs the whole log path.

Real Loki 3.7 and Alloy 1.10 (tests/support/real.py), the project's own configs
(observability/loki/loki.yaml, observability/alloy/config.alloy), real NGINX and uWSGI.
"""
from __future__ import annotations

import json
import os

import pytest

from tests.support.real import Loki, start_real_stack
from tests.support.stack import stop_stack

pytestmark = [pytest.mark.real, pytest.mark.integration]

LAYERS = {"nginx", "uwsgi", "app"}


def by_layer(entries) -> dict[str, list]:
    out: dict[str, list] = {}
    for e in entries:
        out.setdefault(e.labels.get("layer"), []).append(e)
    return out


def test_up_runs_loki_and_alloy_and_everything_reaches_loki_and_survives_a_restart(tmp_path):
    stack = start_real_stack(tmp_path)
    try:
        loki_port = stack.env["LOKI_PORT"]
        base = f"http://127.0.0.1:{loki_port}"
        assert f"starting Loki ({stack.env['LOKI_BIN']}) at {base}" in stack.start_output
        assert "Alloy (" in stack.start_output
        status = {p["name"]: p for p in stack.status()["processes"]}
        assert status["loki"]["health"] == "ready" and status["alloy"]["health"] == "ready", status

        rid = f"real-stack-{os.getpid()}-0001"
        assert stack.request("/pc-builder-app/table", headers={"X-Request-ID": rid}).status == 200
        loki = Loki(base)
        query = f'{{service_name="pc-builder"}} | request_id="{rid}"'
        entries = loki.wait_for(query, lambda es: LAYERS <= set(by_layer(es)), timeout=60,
                                what=f"{rid} at every layer in Loki")
        layers = by_layer(entries)
        # exactly once per layer, with the labels and the structured metadata a query sees
        assert {layer: len(es) for layer, es in layers.items() if layer in LAYERS} == \
            {"nginx": 1, "uwsgi": 1, "app": 1}
        for layer in LAYERS:
            (entry,) = layers[layer]
            assert entry.labels == {"service_name": "pc-builder", "layer": layer,
                                    "instance": entry.json()["instance"], "env": "local"}, entry.labels
            assert entry.metadata.get("request_id") == rid, entry.metadata
        assert layers["app"][0].json()["event"] == "request.finished"

        # ./stack trace reads that Loki (the stack's own, not LOKI_URL)
        traced = stack.run("trace", rid)
        assert f"Loki ({base})" in traced.stdout, traced.stdout
        assert json.loads(stack.run("trace", rid, "--json").stdout)["request_id"] == rid

        # down stops Loki gracefully, up again keeps its data
        stack.run("down")
        assert "loki" not in {p["name"] for p in stack.status().get("processes", [])}
        stack.start_output = stack.run("up", "-d", timeout=180).stdout
        again = loki.query_range(query)
        assert {layer: len(es) for layer, es in by_layer(again).items() if layer in LAYERS} == \
            {"nginx": 1, "uwsgi": 1, "app": 1}
    finally:
        stop_stack(stack)

