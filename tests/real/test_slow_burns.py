"""The slow-burn SLO alerts fire and resolve on the real ruler, and the real Alertmanager
delivers both to a webhook.

With the default objectives (99.9 %, 99 %) a slow burn's 30-minute to 3-day windows hold a
test's errors for hours; tests/validators/test_slo_burn_over_days.py shows their timing over
days on promtool. Here a stack of its own runs the same rule files with both objectives set
to 0.9 through the settings (SLO_AVAILABILITY, SLO_LATENCY): the budget's rate is 10 %, so
a fast burn (14.4x: over 100 %) cannot fire and inhibit the ticket. A fresh stack's windows
all hold the same requests: a known number of failed (or slow) requests puts their share
over 10 %, or over 60 % for the 6h/30m pair, and the ticket fires; then a known number of
good requests, computed from NGINX's file, puts it under 10 % and the ticket resolves with no
further traffic. Before that, the ticket is shown to hold while nothing is sent: the good
requests, not time, resolve it, as they end a real slow burn within its windows.

The webhook is an in-test HTTP server standing in for a team's service
(tests/support/alerting.py: WebhookReceiver). What it proves is that the real Alertmanager
POSTs the firing and the resolved ticket to ALERT_WEBHOOK_URL, grouped by severity, with
ALERT_GROUP_WAIT and ALERT_GROUP_INTERVAL shortened through the settings.

Last, on the same stack, the two recorded series no alert reads are checked against what
was sent: the browser's timings and the app's exceptions (tests/real/test_alerts.py checks
the others).
"""
from __future__ import annotations

import json
import os
import time

import pytest

from tests.support.alerting import (Alerting, WebhookReceiver, good_then_failed, slo_lines, start_alerting_stack,
                                    workers_paused)
from tests.support.load import Load
from tests.support.stack import stop_stack
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.real, pytest.mark.integration]

OBJECTIVE = "0.9"
THRESHOLD = "1"  # seconds: a page waiting on a paused worker takes 3
PAGE = "/pc-builder-app/table"


@pytest.fixture(scope="module")
def hooked(tmp_path_factory):
    hook = WebhookReceiver()
    stack = start_alerting_stack(tmp_path_factory.mktemp("slow-burns"), SLO_AVAILABILITY=OBJECTIVE,
                                 SLO_LATENCY=OBJECTIVE, SLO_LATENCY_THRESHOLD=THRESHOLD,
                                 ALERT_WEBHOOK_URL=hook.url, ALERT_GROUP_WAIT="5s", ALERT_GROUP_INTERVAL="10s")
    try:
        yield Alerting(stack), hook
    finally:
        stop_stack(stack)
        hook.close()


def good_pages(stack, n: int) -> None:
    load = Load(stack, "good", threads=4, max_requests=n, path=PAGE)
    with load:
        load.wait()
    assert load.failures == [], load.failures[:5]


def ticket_fires_and_holds(alerting: Alerting, name: str, *words: str) -> list[dict]:
    """The ticket in Alertmanager, one per window pair that fired, still there after 30 s
    with nothing sent."""
    alerting.wait_for_alert(name)
    time.sleep(30)
    tickets = alerting.find(name)
    assert tickets, f"{name} resolved with no traffic: {alerting.summary()}"
    for alert in tickets:
        assert alert["labels"]["severity"] == "ticket" and alert["status"]["inhibitedBy"] == [], alert
        summary = alert["annotations"]["summary"]
        assert all(w in summary for w in words), summary
    assert not alerting.find(name.replace("Slow", "Fast"))  # 14.4x a 10 % budget: never
    return tickets


def settles_at(alerting: Alerting, ratio: str, share: float) -> None:
    """The recorded ratio reaches the share NGINX's file holds. It resolves the ticket on its
    way down, while its window (ending 30 s ago) holds only part of the good pages."""
    def there():
        value = alerting.value(ratio)
        return value is not None and abs(value - share) < 1e-9
    wait_until(there, 120, f"{ratio} at {share}", interval=2)


def delivered(hook: WebhookReceiver, status: str, name: str) -> None:
    notification, alert = hook.wait_for(status, name)
    assert notification["receiver"] == "webhook" and notification["groupLabels"] == {"severity": "ticket"}
    assert alert["annotations"]["runbook"].endswith(f"#{name.lower()}")


def test_latency_slow_burn_fires_and_resolves_as_fast_pages_outweigh_the_slow(hooked):
    """Pages slowed for 16 s on a fresh stack, then 12 fast pages for each slow one (under
    10 %). The workers run 50 ms in each 5 s: each of the 6 threads, pausing 0.5 s after each
    answer, sends most of its pages into a pause, so over half wait more than 1 s (60 % in a
    run here): the 3d/6h pair fires (over 10 %), the 6h/30m pair too if over 60 %."""
    alerting, hook = hooked
    stack = alerting.stack
    with workers_paused(stack, pause_s=5), Load(stack, "slow", threads=6, pause_s=0.5, path=PAGE):
        time.sleep(16)
    slow = sum(r["request_time"] > float(THRESHOLD) for r in slo_lines(stack))
    assert slow >= 8, f"only {slow} slow pages"
    tickets = ticket_fires_and_holds(alerting, "LatencySlowBurn", f"longer than {THRESHOLD} s",
                                     f"{OBJECTIVE} latency objective")
    assert {t["labels"]["window"] for t in tickets} <= {"6h", "3d"}
    delivered(hook, "firing", "LatencySlowBurn")

    good_pages(stack, 12 * slow)
    alerting.wait_resolved({"LatencySlowBurn"}, timeout=180)
    lines = slo_lines(stack)
    share = sum(r["request_time"] > float(THRESHOLD) for r in lines) / len(lines)
    assert share < 1 - float(OBJECTIVE), share
    settles_at(alerting, 'pcbuilder:slo_latency:slow_ratio{window="3d"}', share)
    delivered(hook, "resolved", "LatencySlowBurn")


def test_availability_slow_burn_fires_and_resolves_as_good_requests_outweigh_the_failed(hooked):
    """After the test above: 502s for a third of the pages served so far (25 % of the
    windows: the 3d/6h pair), then good pages until they are under 10 %."""
    alerting, hook = hooked
    stack = alerting.stack
    served = len(slo_lines(stack))
    failed = served // 3
    good_then_failed(stack, 0, failed)
    (ticket,) = ticket_fires_and_holds(alerting, "AvailabilitySlowBurn", "(5xx)", f"{OBJECTIVE} objective")
    assert ticket["labels"]["window"] == "3d"
    delivered(hook, "firing", "AvailabilitySlowBurn")

    total = served + failed
    good_pages(stack, 10 * failed - total + total // 2)
    alerting.wait_resolved({"AvailabilitySlowBurn"}, timeout=180)
    lines = slo_lines(stack)
    assert sum(r["status"] >= 500 for r in lines) == failed
    assert failed / len(lines) < 1 - float(OBJECTIVE)
    settles_at(alerting, 'pcbuilder:slo_availability:error_ratio{window="3d"}', failed / len(lines))
    delivered(hook, "resolved", "AvailabilitySlowBurn")


def test_browser_timings_and_app_exceptions_are_recorded_as_sent(hooked):
    """Three page views' beacons with the same timings (the quantiles are those values), and
    one request failing on a missing database (one ``request.failed``)."""
    alerting = hooked[0]
    stack = alerting.stack
    timings = {"requestStart": 4.0, "responseStart": 20.0, "responseEnd": 46.5,
               "domContentLoadedEventEnd": 80.0, "loadEventEnd": 120.25}
    for n in range(3):
        body = {"request_id": f"timed-page-{n}", "page": PAGE, "timeOrigin": time.time() * 1000 - 200, **timings}
        resp = stack.request("/pc-builder-app/api/timing", method="POST", body=json.dumps(body).encode(),
                             headers={"Content-Type": "text/plain;charset=UTF-8"})
        assert resp.status == 204, resp.status
    database = os.path.join(stack.env["DATA_DIR"], "pcbuilder.sqlite3")
    os.rename(database, database + ".away")
    try:
        assert stack.request("/pc-builder-app/api/components").status == 500
    finally:
        os.rename(database + ".away", database)

    def peak(promql: str) -> float | None:
        return alerting.value(f"max(max_over_time(({promql})[3m:10s]))")

    want = {("0.5", "request_to_response"): 42.5, ("0.95", "request_to_response"): 42.5,
            ("0.95", "response_to_load"): 73.75}

    def recorded():
        got = {key: peak(f'pcbuilder:browser_timing_ms:quantile1m{{kind="navigation", quantile="{key[0]}",'
                         f' timing="{key[1]}"}}') for key in want}
        failed = peak('sum(pcbuilder:app_exceptions:count1m{route="/pc-builder-app/api/components"})')
        return (got, failed) if got == want and failed == 1 else None

    stack.wait_for(recorded, timeout=120, what=f"the timings {want} and one exception in Prometheus")
    failed = [r for r in stack.records("app") if r.get("event") == "request.failed"]
    assert [r["route"] for r in failed] == ["/pc-builder-app/api/components"]
