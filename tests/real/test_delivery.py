"""Every layer's lines in the real Loki, as a query sees them: labels, structured metadata,
timestamp, exactly once.

The app ships its own lines (layer ``app``); Alloy ships NGINX's, uWSGI's and the browser
beacon's (layers ``nginx``, ``uwsgi``, ``browser``), all with the same four stream labels
and the per-request values as structured metadata (``Loki.query_range`` keeps the two
apart, as Grafana asks for them). ``detected_level`` is structured metadata Loki adds
itself (``discover_log_levels``, for Logs Drilldown). A second stack given the first one's
Loki as ``LOKI_URL`` (its base URL, as Grafana and logcli take it) delivers there too.
"""
from __future__ import annotations

import collections
import json
import time
from datetime import datetime

import pytest

from tests.support.env import free_port
from tests.support.real import binary
from tests.support.stack import start_stack, stop_stack

from .conftest import ENV

pytestmark = [pytest.mark.real, pytest.mark.integration]

# the structured metadata Alloy (config.alloy) and the app's shipper attach, per layer
METADATA = {"nginx": {"request_id", "method", "status"}, "uwsgi": {"request_id", "method", "status"},
            "app": {"request_id", "method", "status", "path"}, "browser": {"request_id"}}

DETECTED_LEVEL = {"INFO": "info", "WARNING": "warn", None: "unknown"}


def entries_of(loki, rid: str) -> dict[str, list]:
    out: dict[str, list] = collections.defaultdict(list)
    for e in loki.query_range(f'{{service_name="pc-builder"}} | request_id="{rid}"'):
        out[e.labels["layer"]].append(e)
    return out


def line_ts_ns(layer: str, record: dict) -> int:
    """The timestamp each layer's line carries, which Loki must have kept."""
    if layer == "nginx":
        return round(record["msec"] * 1000) * 1_000_000
    if layer == "uwsgi":
        return record["start_us"] * 1000
    return round(datetime.fromisoformat(record["time"]).timestamp() * 1e6) * 1000


def test_every_layer_arrives_once_with_its_labels_metadata_and_timestamp(traffic):
    rid = traffic.ids["page"]
    layers = entries_of(traffic.loki, rid)
    events = {layer: collections.Counter(e.json()["event"] for e in es) for layer, es in layers.items()}
    # DB_SLOW_MS=0: the app also logs the page's one query (see conftest)
    assert events == {"nginx": {"nginx.access": 1}, "uwsgi": {"uwsgi.request": 1},
                      "app": {"request.finished": 1, "db.slow_query": 1}, "browser": {"browser.timing": 1}}
    for layer, es in layers.items():
        for e in es:
            record = e.json()
            own = {"worker": e.labels.get("worker")} if layer == "app" else {}
            assert e.labels == {"service_name": "pc-builder", "layer": layer,
                                "instance": record["instance"], "env": ENV, **own}, e.labels
            if record["event"] == "request.finished":
                assert e.labels["worker"] == str(record["worker"]), (e.labels, record["worker"])
            assert set(e.metadata) - {"detected_level"} == (METADATA[layer] if record["event"] != "db.slow_query"
                                                             else {"request_id"}), (layer, e.metadata)
            for key in set(e.metadata) - {"detected_level"}:
                assert e.metadata[key] == str(record[key]), (layer, key, e.metadata)
            assert e.parsed == {}  # no parser in the query: nothing but labels and metadata
            # Loki's own: the line's `level` (the app's and the beacon's), else "unknown"
            assert e.metadata["detected_level"] == DETECTED_LEVEL[record.get("level")], (layer, e.metadata)
            if layer == "app":  # the shipper's clock: the line's own time (µs), rounded either way
                assert abs(e.ts_ns - line_ts_ns(layer, record)) <= 1000, (e.ts_ns, record["time"])
            else:  # Alloy takes each line's own timestamp
                assert e.ts_ns == line_ts_ns(layer, record), (layer, e.ts_ns, record)
    assert {e.labels["instance"] for e in layers["uwsgi"] + layers["app"]} <= {"app1", "app2"}


def local_ids(stack, layer: str) -> set[str]:
    ids = collections.Counter(r.get("request_id") for r in stack.records(layer)
                              if str(r.get("request_id")).startswith("real-"))
    assert set(ids.values()) == {1}, f"{layer}: an id twice in the files"
    return set(ids)


def test_every_request_of_the_traffic_is_in_loki_once_per_layer(traffic):
    counts = traffic.loki.ids_by_layer("real-", ("nginx", "uwsgi", "app"))
    sent = local_ids(traffic.stack, "nginx")
    assert len(sent) >= 45 and set(traffic.ids.values()) <= sent
    assert dict(counts["nginx"]) == {rid: 1 for rid in sent}
    # uWSGI: every request NGINX passed on (not the static file, not the 502), once
    passed = sent - {traffic.ids["static"], traffic.ids["bad_gateway"]}
    assert local_ids(traffic.stack, "uwsgi") == passed
    assert dict(counts["uwsgi"]) == {rid: 1 for rid in passed}
    # the app: request.finished, and one db.slow_query per query (DB_SLOW_MS=0)
    finished = collections.Counter(
        e.metadata["request_id"] for e in traffic.loki.query_all(
            '{service_name="pc-builder", layer="app"} | request_id=~"real-.*" |= "\\"request.finished\\""'))
    assert dict(finished) == {rid: 1 for rid in passed}


def test_a_second_stack_ships_to_a_loki_given_as_its_base_url(traffic, tmp_path):
    """LOKI_URL as Loki's base URL: the app pushes to /loki/api/v1/push of it, ./stack hands
    Alloy the push URL, `up` checks that Loki is ready. No Loki of its own (LOKI_BIN=off)."""
    base = traffic.loki.base
    second = start_stack(tmp_path, LOKI_URL=base, LOKI_BIN="off", ALLOY_BIN=binary("alloy"),
                         ALLOY_PORT=str(free_port()), STACK_ENV="second", LOKI_BATCH_INTERVAL="0.2")
    try:
        assert f"stack: Loki at {base} is ready" in second.start_output
        assert "loki" not in {p["name"] for p in second.status()["processes"]}
        rid = f"second-stack-{time.time_ns()}"
        assert second.request("/pc-builder-app/table", headers={"X-Request-ID": rid}).status == 200
        counts = traffic.loki.wait_for_ids([rid], rid, ("nginx", "uwsgi", "app"), timeout=60)
        assert {layer: dict(c) for layer, c in counts.items()} == {
            layer: {rid: 1} for layer in ("nginx", "uwsgi", "app")}
        (line,) = traffic.loki.query_range(f'{{service_name="pc-builder", env="second", layer="app"}}'
                                           f' | request_id="{rid}" |= "request.finished"')
        assert json.loads(line.line)["request_id"] == rid
    finally:
        stop_stack(second)
