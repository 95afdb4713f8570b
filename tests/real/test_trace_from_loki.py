"""``./stack trace`` reading the stack's own real Loki: the same twelve steps as from the files.

The page view of the shared traffic (tests/real/conftest.py) has lines at every layer,
the beacon included; traced from Loki and from the local files (``--files``) it must give
the same steps, times and details. ``--last`` asks Loki for the newest request NGINX logged.
A request that failed (its database moved away for a moment) ships its kept detail too: the
fine events, each ``detail: true``, placed in steps 5-7 from Loki as from the files.
"""
from __future__ import annotations

import json
import os
import time

import pytest

from tests.support.waiting import wait_until

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


def test_kept_detail_of_a_failed_request_from_loki_is_the_detail_from_the_files(traffic):
    stack = traffic.stack
    database = os.path.join(stack.env["DATA_DIR"], "pcbuilder.sqlite3")
    rid = f"kept-error-{os.getpid()}-{time.time_ns() % 10**9:09d}"  # not real-: the traffic's counts stay
    os.rename(database, database + ".away")
    try:
        assert stack.request("/pc-builder-app/table", headers={"X-Request-ID": rid}).status == 500
    finally:
        os.rename(database + ".away", database)
    stack.wait_for(lambda: any(r["request_id"] == rid for r in stack.records("nginx")),
                   what="the NGINX line (written after the response)")
    from_files = trace(stack, rid, "--files")
    kept = from_files["kept_detail"]
    assert kept["why"] == "error" and kept["kept"] == len(kept["events"]) >= 4
    assert {e["event"] for e in kept["events"]} >= {"request.started", "db.query", "log.record", "template.rendered"}
    assert {e["step"] for e in kept["events"]} <= {5, 6, 7}

    last = {}

    def arrived():  # the app ships its lines itself, Alloy NGINX's and uWSGI's a little later
        last.update(trace(stack, rid))
        return last["kept_detail"] == kept and last["steps"] == from_files["steps"]

    try:
        wait_until(arrived, 90, f"the kept detail of {rid} in Loki", interval=1)
    finally:
        differing = [(a, b) for a, b in zip(last["kept_detail"]["events"], kept["events"]) if a != b]
        assert last["kept_detail"] == kept, differing
    assert last["steps"] == from_files["steps"]
