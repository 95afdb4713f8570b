"""``./stack trace`` reading the stack's own real Loki: the same twelve steps as from the files.

The page view of the shared traffic (tests/real/conftest.py) has lines at every layer,
the beacon included; traced from Loki and from the local files (``--files``) it must give
the same steps, times and details. ``--last`` asks Loki for the newest request NGINX logged.
"""
from __future__ import annotations

import json

import pytest

from .conftest import send

pytestmark = [pytest.mark.real, pytest.mark.integration]


def trace(stack, *args: str) -> dict:
    return json.loads(stack.run("trace", *args, "--json").stdout)


def test_trace_from_loki_is_the_trace_from_the_files(traffic):
    rid = traffic.ids["page"]
    text = traffic.stack.run("trace", rid).stdout
    assert f"Loki ({traffic.loki.base})" in text, text
    from_loki, from_files = trace(traffic.stack, rid), trace(traffic.stack, rid, "--files")
    assert from_loki["request_id"] == rid
    assert [s["number"] for s in from_loki["steps"] if s["time"] is not None] == list(range(1, 13))
    assert from_loki["steps"] == from_files["steps"]
    assert from_loki == from_files


def test_trace_last_asks_loki_for_the_newest_request(traffic):
    rid = send(traffic.stack, "last", "/pc-builder-app/builder")
    traffic.loki.wait_for_ids([rid], rid, ("nginx", "uwsgi", "app"))
    text = traffic.stack.run("trace", "--last").stdout
    assert f"Loki ({traffic.loki.base})" in text and rid in text, text
    assert trace(traffic.stack, "--last")["request_id"] == rid
