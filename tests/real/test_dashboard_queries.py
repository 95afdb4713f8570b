"""Every LogQL query of every provisioned dashboard, run by the real Loki on real data.

All Loki targets of observability/grafana/dashboards/*.json (tests/support/dashboards.py),
with the variables set as a user would set them (the page view's request id, the stack's
``env``), are sent the way Grafana sends them: instant queries at the end of the traffic,
range queries over it. Each must answer without error and return data: the shared traffic
(tests/real/conftest.py) has every layer, errors, 429s and a full page view; the few that
rightly stay empty on it are listed with the reason (MAY_BE_EMPTY). A new panel is checked
here without a line of this file changing.

Loki 3.6 changed one rule the queries lean on: a parser no longer overrides structured
metadata. ``| json`` of a line whose ``status`` is also structured metadata keeps the
metadata's ``status`` and names the parsed one ``status_extracted``; the last test shows
that, and that the dashboards' ``status`` filters and groupings still mean the line's status.
"""
from __future__ import annotations

import collections
import json

import pytest

from tests.support.dashboards import loki_targets

from .conftest import ENV

pytestmark = [pytest.mark.real, pytest.mark.integration]

# Targets that may rightly answer nothing on the shared traffic, and why.
MAY_BE_EMPTY = {
    # the app writes no `detail` yet: the panel waits for its detail buffer
    "request-trace.json / Why detail was kept / A": "the app keeps no detail yet",
    # a healthy stack drops nothing; test_loki_faults.py shows this panel with real drops
    **{f"stack-overview.json / Lines the app's shipper dropped (loki.report) / {ref}": "no drops"
       for ref in "ORS"},
}
#: the variables as a user sets them: the page view's id, the stack's env, every request slow
VALUES = {"env": ENV, "slow_ms": "0"}


def run(traffic, target) -> list:
    """The target's answer, as Grafana asks for it at the end of the traffic."""
    return traffic.loki.answer(target, traffic.started - 60, traffic.ended + 5)


def targets(traffic):
    return loki_targets({**VALUES, "request_id": traffic.ids["page"]})


def test_every_dashboard_query_answers_with_data(traffic):
    answered = {t.where: run(traffic, t) for t in targets(traffic)}  # an error answer fails here
    empty = sorted(where for where, result in answered.items() if not result)
    assert empty == sorted(w for w in MAY_BE_EMPTY if w in answered), f"no data: {empty}"
    assert len(answered) >= 20 and {t.dashboard for t in targets(traffic)} >= {
        "request-trace.json", "stack-overview.json"}


def test_the_request_trace_dashboard_shows_the_page_view(traffic):
    """Its log queries return the page's lines and nothing else, every layer's in the panels
    of all layers; the twelve steps panel has all twelve rows."""
    rid = traffic.ids["page"]
    trace = [t for t in targets(traffic) if t.dashboard == "request-trace.json"]
    for target in (t for t in trace if t.is_log_query):
        streams = run(traffic, target)
        for stream in streams:
            for value in stream["values"]:
                assert value[2]["structuredMetadata"]["request_id"] == rid, target.where
        if "all layers" in target.panel["title"] or "Log lines for request" in target.panel["title"]:
            assert {s["stream"]["layer"] for s in streams} == {"nginx", "uwsgi", "app", "browser"}, target.where
    (at_column,) = [t for t in trace if t.panel["title"] == "Twelve steps" and t.ref_id == "AT"]
    steps = sorted(s["metric"]["step"] for s in run(traffic, at_column))
    assert steps == [f"{n:02d}" for n in range(1, 13)], steps


def test_the_error_panels_show_the_502_and_not_a_healthy_start(traffic):
    """Every uWSGI line written before the traffic began is the start of a healthy stack."""
    started = {json.dumps(r, separators=(",", ":")) for r in traffic.stack.records("uwsgi")
               if r["event"] == "uwsgi.server" and r["time_us"] / 1e6 < traffic.started}
    assert len(started) > 20
    for target in targets(traffic):
        if target.panel["title"] in ("Recent errors (click a request_id to trace it)", "Error log lines"):
            lines = [v for s in run(traffic, target) for v in s["values"]]
            shown = {v[2]["structuredMetadata"].get("request_id") for v in lines}
            assert traffic.ids["bad_gateway"] in shown, target.where
            assert not started & {v[1] for v in lines}, (target.where, started & {v[1] for v in lines})


def test_parsed_fields_do_not_override_structured_metadata(traffic):
    loki = traffic.loki
    rid = traffic.ids["bad_gateway"]
    (entry,) = loki.query_range(f'{{service_name="pc-builder", layer="nginx"}} | request_id="{rid}" | json')
    assert entry.metadata["status"] == "502" and entry.parsed["status_extracted"] == "502"
    assert "status" not in entry.parsed and entry.parsed["layer_extracted"] == "nginx"
    # the overview's `status` filter after `| json event, status` reads the metadata, which
    # is the line's own status: the 502 is found, and only where it happened
    errors = loki.query_range(f'{{service_name="pc-builder", env="{ENV}"}} | json event, status'
                              ' | __error__="" | event=~"nginx.access|uwsgi.request|request.finished"'
                              ' | status >= 500')
    assert {(e.labels["layer"], e.metadata["request_id"]) for e in errors} == {("nginx", rid)}
    # grouping by status counts what the files hold
    series = loki.instant(f'sum by (status) (count_over_time({{service_name="pc-builder", env="{ENV}",'
                          ' layer="nginx"} | json event, status | event="nginx.access" [1h]))',
                          at_s=traffic.ended + 5)
    in_loki = {s["metric"]["status"]: int(s["value"][1]) for s in series}
    lines = [r for r in traffic.stack.records("nginx") if r["msec"] <= traffic.ended + 5]
    assert in_loki == dict(collections.Counter(str(r["status"]) for r in lines))
