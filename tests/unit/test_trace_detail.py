"""The app's fine events in the trace: kept detail (a failed, slow or sampled request,
each line with ``"detail": true``) and DEBUG, shown inside steps 5-7 with why they were kept.

The kept lines follow the app's contract (tests/support/recorded_trace.py:kept_detail)."""
from __future__ import annotations

import re

import pytest

from stackctl import trace
from stackctl.trace import table, waterfall
from tests.support.recorded_trace import APP, RID, kept_detail, recorded, recorded_at_info


def steps_of(result):
    return {s["number"]: s for s in result["steps"]}


def test_kept_detail_places_every_event_in_steps_5_to_7():
    result = trace.derive(kept_detail("slow"), RID)
    kept = result["kept_detail"]
    assert kept["why"] == "slow" and kept["kept"] == 6 and kept["dropped"] == 0
    assert [(e["event"], e["step"]) for e in kept["events"]] == [
        ("request.started", 5), ("listing.parsed", 6), ("db.query", 6), ("components.retrieved", 6),
        ("template.rendered", 7), ("log.record", 6)]
    assert all(e["kept"] for e in kept["events"])
    query = next(e for e in kept["events"] if e["event"] == "db.query")
    # start_us is measured: the query ran 1795558533.269714 .. + 5.23 ms
    assert query["start"] == pytest.approx(1795558533.269714) and query["end"] == pytest.approx(1795558533.274944)
    assert query["text"] == "SELECT id, category, name, price FROM components ORDER BY name ASC (58 rows)"
    render = next(e for e in kept["events"] if e["event"] == "template.rendered")
    assert render["text"] == "render table.html" and render["duration_ms"] == 60.1
    steps = steps_of(result)
    assert steps[5]["detail"].startswith("request.started") and steps[5]["source"] == "measured"
    # with the query's own start_us, step 6 is measured (at DEBUG without it, derived)
    assert steps[6]["source"] == "measured" and steps[6]["time"] == pytest.approx(1795558533.269714)
    for e in kept["events"]:
        assert steps[5]["time"] - 1e-6 <= e["start"] <= steps[7]["time"], e
    assert result["order"]["consistent"] and result["missing"] == []


@pytest.mark.parametrize("why, says", [
    ("error", "detail kept because the request failed (5xx or an unhandled exception)"),
    ("slow", "detail kept because the request was slow (LOG_DETAIL_SLOW_MS)"),
    ("sampled", "detail kept because the request was sampled (LOG_DETAIL_SAMPLE)"),
])
def test_both_views_say_why_detail_was_kept(why, says):
    result = trace.derive(kept_detail(why), RID)
    for text in (table.render(result), waterfall.render(result, columns=200)):
        assert f"{says}: 6 fine events of the app" in text


def test_the_table_lists_the_events_under_their_steps():
    lines = table.render(trace.derive(kept_detail(), RID)).splitlines()
    at = {n: next(i for i, line in enumerate(lines) if re.match(rf"^{n:>2}  ", line)) for n in range(1, 13)}
    between = lambda a, b: "\n".join(lines[at[a] + 1:at[b]])  # noqa: E731
    assert "db.query" in between(6, 7) and "SELECT id, category" in between(6, 7) and "5.230 ms" in between(6, 7)
    assert "template.rendered" in between(7, 8) and "render table.html" in between(7, 8)
    assert "request.started" in between(5, 6)
    assert "WARNING pcbuilder.pages: a component has no price" in between(6, 7)
    assert "db.query" not in between(1, 5) + between(8, 12)


def test_the_waterfall_draws_each_query_and_the_render_inside_flasks_hop():
    result = trace.derive(kept_detail(), RID)
    text = waterfall.render(result, columns=140)
    lines = text.splitlines()
    flask = next(line for line in lines if "Flask: database and logic" in line)
    query = next(line for line in lines if "· db.query" in line)
    render = next(line for line in lines if "· template.rendered" in line)
    first_block = lambda line: min(line.index(c) for c in "▏▎▍▌▋▊▉█" if c in line)  # noqa: E731
    last_block = lambda line: max(line.rindex(c) for c in "▏▎▍▌▋▊▉█" if c in line)  # noqa: E731
    assert first_block(flask) <= first_block(query) <= first_block(render) <= last_block(flask)
    assert last_block(render) - first_block(render) > 5 * (last_block(query) - first_block(query))
    assert "SELECT id, category" in query and "render table.html" in render
    assert "5.230 ms" in query and "60.1 ms" in render


def test_at_debug_the_same_events_come_without_a_reason():
    result = trace.derive(recorded(), RID)  # APP: request.started, db.query, components.retrieved
    kept = result["kept_detail"]
    assert kept["why"] == "debug" and kept["kept"] is None
    assert [e["event"] for e in kept["events"]] == [r["event"] for r in APP[:-1]]
    assert not any(e["kept"] for e in kept["events"])
    # db.query without start_us: it started duration_ms before its line was written
    query = kept["events"][1]
    assert query["end"] - query["start"] == pytest.approx(0.00523, abs=1e-6)  # epoch floats: µs precision
    assert query["end"] == pytest.approx(1795558533.274944)
    assert "LOG_LEVEL=DEBUG writes them for every request" in table.render(result)


def test_a_normal_request_has_no_detail():
    result = trace.derive(recorded_at_info(), RID)
    assert result["kept_detail"] == {"why": None, "kept": None, "dropped": None, "events": []}
    assert "detail" not in table.render(result).splitlines()[1]


def test_a_slow_query_warning_shows_when_no_query_was_kept():
    lines = recorded_at_info() + [{"level": "WARNING", "logger": "pcbuilder.db", "event": "db.slow_query",
                                   "layer": "app", "instance": "app1", "pid": 695, "request_id": RID,
                                   "sql": "SELECT * FROM components", "rows": 58, "duration_ms": 5.23,
                                   "threshold_ms": 5, "time": "2026-11-24T22:15:33.274944+00:00"}]
    events = trace.derive(lines, RID)["kept_detail"]["events"]
    assert [(e["event"], e["step"], e["text"]) for e in events] == [
        ("db.slow_query", 6, "SELECT * FROM components (58 rows)")]


def test_dropped_events_are_counted():
    lines = kept_detail()
    finished = next(r for r in lines if r.get("event") == "request.finished")
    finished.update(detail_kept=64, detail_dropped=12)
    text = table.render(trace.derive(lines, RID))
    assert "(the app kept 64), 12 more dropped (over the per-request bound)" in text


def test_a_failed_query_and_the_error_record_say_what_failed():
    lines = kept_detail("error")
    query = next(r for r in lines if r.get("event") == "db.query")
    query.update(rows=None, error="OperationalError")
    record = next(r for r in lines if r.get("event") == "log.record")
    record.update(record_level="ERROR", logger="pcbuilder.request", message="request.failed", error="OperationalError")
    texts = {e["event"]: e["text"] for e in trace.derive(lines, RID)["kept_detail"]["events"]}
    assert texts["db.query"].endswith("ORDER BY name ASC FAILED: OperationalError")
    assert texts["log.record"] == "ERROR pcbuilder.request: request.failed (OperationalError)"


def test_the_sources_own_fields_are_not_part_of_what_an_event_says():
    lines = kept_detail()
    for r in lines:
        r["_loki_ts_ns"] = 1795558533267626000  # what the Loki source adds to each record
    texts = {e["event"]: e["text"] for e in trace.derive(lines, RID)["kept_detail"]["events"]}
    assert texts["components.retrieved"] == "count=58"
