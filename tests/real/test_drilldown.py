"""What Grafana's Logs Drilldown asks Loki, answered by the real Loki with the stack's data.

Drilldown (bundled with Grafana 13) reads the volume per label (``/index/volume``,
``/index/volume_range``), the fields and labels Loki detects in the lines
(``/detected_fields``, ``/detected_field/<name>/values``, ``/detected_labels``), each
line's level (structured metadata ``detected_level``) and line patterns (``/patterns``,
from the pattern ingester: observability/loki/loki.yaml). The traffic is the shared one
(tests/real/conftest.py).
"""
from __future__ import annotations

import time

import pytest

from .conftest import ENV, TABLE_VIEWS

pytestmark = [pytest.mark.real, pytest.mark.integration]

SERVICE = f'{{service_name="pc-builder", env="{ENV}"}}'  # not the second stack of test_delivery.py
LAYERS = {"nginx", "uwsgi", "app", "browser"}


def window(traffic) -> dict:
    return {"start": int((traffic.started - 60) * 1e9), "end": time.time_ns()}


def test_patterns_group_the_apps_queries(traffic):
    """DB_SLOW_MS=0: every query is a db.slow_query line whose `sql` the ingester groups.
    Loki answers only patterns one stream has at least 30 times: the /table query ran 80
    times on the two instances."""
    def table_pattern():
        data = traffic.loki.get("/loki/api/v1/patterns", query=SERVICE, step="10s", **window(traffic))["data"]
        return [p for p in data if "FROM components ORDER BY" in p["pattern"]]

    (pattern,) = traffic.stack.wait_for(table_pattern, timeout=60, what="the /table query's pattern")
    assert pattern["pattern"].startswith("<_>SELECT ") and pattern["level"] == "warn", pattern
    assert 30 <= sum(n for _, n in pattern["samples"]) <= TABLE_VIEWS + len(traffic.ids) + 10, pattern["samples"]


def test_detected_fields_are_the_json_fields_people_filter_by(traffic):
    fields = {f["label"]: f for f in traffic.loki.get("/loki/api/v1/detected_fields", query=SERVICE,
                                                        **window(traffic))["fields"]}
    assert {"status", "route", "duration_ms", "level", "request_time", "uri", "event"} <= set(fields), sorted(fields)
    assert fields["status"]["type"] == "int" and fields["duration_ms"]["type"] in ("float", "duration")
    assert fields["status"]["parsers"] == ["json"]
    values = traffic.loki.get("/loki/api/v1/detected_field/status/values", query=SERVICE,
                              **window(traffic))["values"]
    # Loki samples lines for these (newest first): the last statuses of the traffic at least
    assert {"200", "502"} <= set(values) <= {"200", "404", "502"}, values


def test_detected_labels_are_the_stream_labels(traffic):
    labels = {d["label"]: d["cardinality"] for d in traffic.loki.get(
        "/loki/api/v1/detected_labels", query=SERVICE, **window(traffic))["detectedLabels"]}
    assert labels["layer"] == len(LAYERS) and labels["env"] == 1, labels
    assert labels["instance"] >= 3  # app1, app2 and NGINX's host


def test_volume_per_layer_and_over_time(traffic):
    volume = traffic.loki.get("/loki/api/v1/index/volume", query=SERVICE, targetLabels="layer",
                              **window(traffic))["data"]["result"]
    by_layer = {v["metric"]["layer"]: int(v["value"][1]) for v in volume}
    assert set(by_layer) == LAYERS and all(n > 0 for n in by_layer.values()), by_layer
    over_time = traffic.loki.get("/loki/api/v1/index/volume_range", query=SERVICE, step="60s",
                                 targetLabels="layer", **window(traffic))["data"]
    assert {s["metric"]["layer"] for s in over_time["result"]} == LAYERS
