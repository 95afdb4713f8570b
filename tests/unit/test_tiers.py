"""tests/support/tiers.py: which tier a test is in, what one xdist worker runs at a time, the
order the slow tiers start in, and the time-per-tier lines printed at the end of a run."""
from __future__ import annotations

from types import SimpleNamespace

from tests.support import tiers


def test_a_tests_tier_is_its_folder_under_tests():
    assert tiers.tier("tests/unit/test_api.py::test_x") == "unit"
    assert tiers.tier("tests/real/test_delivery.py::test_y[a/b]") == "real"
    assert tiers.tier("tests/conftest.py") == "other"


def test_a_worker_takes_a_module_or_a_whole_tier_that_shares_session_fixtures():
    assert tiers.scope("tests/integration/test_faults.py::test_a") == "tests/integration/test_faults.py"
    assert tiers.scope("tests/real/test_drilldown.py::test_b") == "tests/real"
    assert tiers.scope("tests/deploy/test_chart.py::test_c[default]") == "tests/deploy"


def test_the_slow_tiers_start_first_and_each_keeps_its_order():
    items = [SimpleNamespace(nodeid=n) for n in
             ("tests/unit/a.py::x", "tests/compose/c.py::y", "tests/unit/b.py::z", "tests/real/r.py::w",
              "tests/integration/i.py::v")]
    tiers.start_order(items)
    assert [i.nodeid for i in items] == ["tests/compose/c.py::y", "tests/real/r.py::w", "tests/integration/i.py::v",
                                         "tests/unit/a.py::x", "tests/unit/b.py::z"]


def _report(nodeid, when, outcome, start, stop):
    return SimpleNamespace(nodeid=nodeid, when=when, outcome=outcome, start=start, stop=stop,
                           duration=stop - start)


def test_each_tier_gets_its_count_time_span_and_outcomes():
    times = tiers.Times()
    for report in (_report("tests/unit/a.py::x", "setup", "passed", 100.0, 100.5),
                   _report("tests/unit/a.py::x", "call", "passed", 100.5, 102.0),
                   _report("tests/unit/a.py::x", "teardown", "passed", 102.0, 102.5),
                   _report("tests/unit/a.py::y", "call", "failed", 103.0, 104.0),
                   _report("tests/real/r.py::z", "setup", "skipped", 90.0, 90.0)):
        times.add(report)
    real, unit, session = times.lines()
    assert real.split()[:3] == ["real", "1", "tests"] and "(1 skipped)" in real
    assert unit.split()[:3] == ["unit", "2", "tests"]
    assert "3.5 s in its tests" in unit and "4.0 s from its first to its last" in unit
    assert "(1 failed, 1 passed)" in unit
    assert session.split()[:3] == ["session", "3", "tests"] and session.endswith("wall time")


def test_minutes_are_written_as_minutes():
    assert tiers._clock(754.25) == "12 min 34.2 s"
    assert tiers._clock(9.96) == "10.0 s"
