"""Every Prometheus query of every dashboard (the SLOs and alerts one) answers with data on a
real stack: the real Loki's ruler records from real traffic, Debian's real Prometheus
evaluates the project's rendered rules, as ./stack runs them (tests/support/alerting.py:
short intervals through the settings only). A new panel is checked without changing this
test. The panels' rendering is proven on recorded answers of the same stack
(tests/logql/dashboards.test.mjs, fixtures/README.md)."""
from __future__ import annotations

import pytest

from tests.support.alerting import Alerting, good_then_failed, start_alerting_stack
from tests.support.dashboards import prometheus_targets
from tests.support.stack import stop_stack
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.real, pytest.mark.integration]

OK, FAILED = 20, 5


@pytest.fixture(scope="module")
def alerting(tmp_path_factory):
    stack = start_alerting_stack(tmp_path_factory.mktemp("slo-dashboard"))
    try:
        good_then_failed(stack, OK, FAILED)
        yield Alerting(stack)
    finally:
        stop_stack(stack)


def test_every_slo_dashboard_query_answers_with_data(alerting):
    targets = prometheus_targets()
    assert len(targets) >= 8
    # every request counted by the ruler, and the alert it causes evaluated
    def counted():
        ratio = alerting.value('pcbuilder:slo_availability:error_ratio{window="30d"}')
        return ratio is not None and abs(ratio - FAILED / (OK + FAILED)) < 1e-9

    wait_until(counted, 240, "the 30-day error ratio of the traffic sent", interval=2)
    wait_until(lambda: alerting.query('ALERTS{alertname="AvailabilityFastBurn"}'), 120, "the fast burn", interval=2)
    empty = [t.where for t in targets if not alerting.query(t.expr)]
    assert empty == [], f"no data on a real stack: {empty}"
    budget = next(t.expr for t in targets if t.panel["title"].startswith("Availability: error budget left"))
    left = alerting.value(budget)
    assert left == pytest.approx(1 - (FAILED / (OK + FAILED)) / (1 - 0.999)), left
