"""A real browser (Debian's Chromium, driven by Playwright) against ./stack up -d.

Opens /main, clicks through to /table, reads the navigation's X-Request-ID, waits for the
page's Navigation Timing beacon, and checks that ``./stack trace <id> --json`` has all
twelve steps in a consistent order; then the same for a builder pick's ``POST
/api/builds``, whose browser steps come from the Resource Timing app.js reports for its
own fetches, and that a builder session's beacons stay within NGINX's limit for them.

Clock skew: Chromium runs on the same host, but Navigation Timing times are
``performance.timeOrigin`` (taken from the wall clock once per page, then advanced by a
monotonic clock) plus offsets rounded to 0.1 ms, so they can disagree with the server's
wall clock by a little. ``trace`` uses them as they are when they already bracket NGINX's
window (requestStart <= NGINX received and responseEnd >= NGINX sent); otherwise it
shifts them by the NTP-style offset that centres the browser's requestStart..responseEnd
on NGINX's received..sent, and reports that skew. The order is then checked on the
aligned times, allowing each layer its clock resolution (NGINX 1 ms, browser 0.1 ms).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.integration]

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
SLACK_S = {"nginx": 0.001, "uwsgi": 1e-6, "app": 1e-6, "browser": 1e-4}


def browser_line(stack, rid: str) -> dict:
    return stack.wait_for(
        lambda: next((r for r in stack.records("browser") if r.get("request_id") == rid), None),
        timeout=15, what=f"the browser.timing line of {rid}")


def twelve_steps(stack, rid: str) -> dict:
    """``./stack trace <id> --json`` once uWSGI's line is written: all twelve steps, 1 and
    12 measured by the browser."""
    stack.wait_for(lambda: any(r.get("request_id") == rid for r in stack.records("uwsgi")),
                   what="the uWSGI line")
    data = json.loads(stack.run("trace", rid, "--json").stdout)
    steps = {s["number"]: s for s in data["steps"]}
    assert list(steps) == list(range(1, 13)) and data["missing"] == [], data["missing"]
    assert steps[1]["layer"] == steps[12]["layer"] == "browser"
    assert steps[1]["source"] == steps[12]["source"] == "measured"
    return data


def test_a_browser_page_view_is_traced_through_all_twelve_steps(stack, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        # Anything the Content-Security-Policy blocks shows up as a console error.
        console = []
        page.on("console", lambda msg: console.append(msg.text))
        main = page.goto(stack.url + "/pc-builder-app/main")
        assert main.status == 200
        page.wait_for_load_state("load")
        with page.expect_navigation() as navigation:
            page.click("nav.site-nav a[href='/pc-builder-app/table']")
        response = navigation.value
        assert response.status == 200 and response.url.endswith("/pc-builder-app/table")
        rid = response.headers["x-request-id"]
        assert page.locator('meta[name="request-id"]').get_attribute("content") == rid
        page.wait_for_load_state("load")

        # The page really rendered the catalogue.
        rows = page.locator("#components-table tr.component-row")
        assert rows.count() == 58
        assert page.locator("footer code").inner_text() == rid
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "table.png"), full_page=True)
        assert (ARTIFACTS / "table.png").stat().st_size > 10_000

        builder = page.goto(stack.url + "/pc-builder-app/builder")
        assert builder.status == 200
        page.wait_for_load_state("load")
        assert not [m for m in console if "Content Security Policy" in m or "Refused to" in m], console
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]

        beacon = browser_line(stack, rid)
    finally:
        context.close()

    assert beacon["layer"] == "browser" and beacon["page"] == "/pc-builder-app/table"
    assert beacon["beacon_request_id"] != rid
    assert beacon["loadEventEnd"] >= beacon["domContentLoadedEventEnd"] >= beacon["responseEnd"] > 0

    data = twelve_steps(stack, rid)
    steps = {s["number"]: s for s in data["steps"]}
    assert data["browser_skew_ms"] is not None

    # client send <= NGINX receive <= uWSGI start <= Flask start <= Flask end <= uWSGI end
    # <= NGINX end <= client receive, on the aligned browser times.
    chain = [1, 2, 4, 5, 7, 9, 11, 12]
    for a, b in zip(chain, chain[1:]):
        slack = SLACK_S[steps[a]["layer"]] + SLACK_S[steps[b]["layer"]]
        assert steps[a]["time"] <= steps[b]["time"] + slack, (a, b, steps[a], steps[b])
    assert data["order"] == {"chain": chain, "consistent": True, "violations": []}
    assert steps[12]["load_end"] >= steps[12]["dom_content_loaded"] >= steps[12]["time"]

    human = stack.run("trace", rid).stdout
    assert "client sends the request" in human and "MISSING" not in human
    print(human)  # shown with -s: a real example for the README


def test_a_builder_pick_is_traced_with_its_browser_steps(stack, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.goto(stack.url + "/pc-builder-app/builder")
        page.wait_for_load_state("load")
        page_id = page.locator('meta[name="request-id"]').get_attribute("content")
        with page.expect_response(lambda r: r.url.endswith("/api/builds")) as checked:
            page.select_option("#pick-cpu", "2")
        assert checked.value.request.method == "POST" and checked.value.status == 200
        rid = checked.value.headers["x-request-id"]
        assert rid != page_id
        # The verdict names the request that produced it, and so does the footer now.
        page.locator(f"#build-result .verdict-request-id:text-is('{rid}')").wait_for()
        assert page.locator("#request-id").inner_text() == rid
        timing = browser_line(stack, rid)
    finally:
        context.close()

    # The contract with ./stack trace: the fetch's own id, kind "fetch", its path, the
    # Resource Timing fields as for a navigation, and no DOM times.
    assert timing["kind"] == "fetch" and timing["page"] == "/pc-builder-app/api/builds"
    assert timing["layer"] == "browser" and timing["beacon_request_id"] not in (rid, page_id)
    assert 0 < timing["requestStart"] <= timing["responseStart"] <= timing["responseEnd"]
    assert timing["timeOrigin"] > 1e12
    assert "domContentLoadedEventEnd" not in timing and "loadEventEnd" not in timing
    data = twelve_steps(stack, rid)
    assert data["order"]["consistent"] is True, data["order"]
    human = stack.run("trace", rid).stdout
    assert "POST /pc-builder-app/api/builds" in human and "MISSING" not in human
    print(human)


def test_a_pick_answered_just_before_leaving_is_still_timed(stack, browser):
    """The Resource Timing entry of a fetch is recorded when its body ends, but handed to
    app.js's observer later, in a task of its own: on a slow device (Chromium's CPU
    throttling, 60x) leaving the page right after the answer came before that task ran.
    Leaving must still send the fetch's timing."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        context.new_cdp_session(page).send("Emulation.setCPUThrottlingRate", {"rate": 60})
        page.goto(stack.url + "/pc-builder-app/builder")
        page.wait_for_load_state("load")
        ids = []
        for n in range(3):
            with page.expect_response(lambda r: r.url.endswith("/api/builds")) as checked:
                page.select_option("#pick-gpu", str(24 + n))
            ids.append(checked.value.headers["x-request-id"])
        page.goto(stack.url + "/pc-builder-app/main")
        page.wait_for_load_state("load")
        stack.wait_for(
            lambda: set(ids) <= {r["request_id"] for r in stack.records("browser") if r.get("kind") == "fetch"},
            timeout=20, what="a browser.timing line for each pick, the last one included")
    finally:
        context.close()


def test_a_builder_session_stays_within_the_beacon_limit_and_every_pick_is_timed(stack, browser):
    """NGINX allows the beacon 2 a second per address (burst 20). 30 picks in a few
    seconds would be 30 beacons if each were sent on its own; app.js sends at most one a
    second, of up to 8 timings, and on leaving what is still queued."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    ids = []
    try:
        page = context.new_page()
        page.goto(stack.url + "/pc-builder-app/builder")
        page.wait_for_load_state("load")
        started = time.monotonic()
        for n in range(30):
            with page.expect_response(lambda r: r.url.endswith("/api/builds")) as checked:
                page.select_option("#pick-gpu", str(24 + n % 8))
            assert checked.value.status == 200
            ids.append(checked.value.headers["x-request-id"])
        page.goto(stack.url + "/pc-builder-app/main")  # leaving sends what is still queued
        page.wait_for_load_state("load")
        seconds = time.monotonic() - started
        timed = stack.wait_for(
            lambda: (lambda got: got if set(ids) <= got else None)(
                {r["request_id"] for r in stack.records("browser") if r.get("kind") == "fetch"}),
            timeout=20, what="a browser.timing line for each of the 30 picks")
        # /main's own beacon too: closing the context aborts a beacon still in flight (NGINX
        # logs it 499), which a slow server makes likely.
        browser_line(stack, page.locator('meta[name="request-id"]').get_attribute("content"))
    finally:
        context.close()
    assert set(ids) <= timed
    beacons = {r["beacon_request_id"] for r in stack.records("browser") if r.get("request_id") in ids}
    # Batched: one a second while picking, then the queue (at most 30, 8 a beacon) on leaving.
    assert len(beacons) <= math.floor(seconds) + 1 + math.ceil(len(ids) / 8), (seconds, beacons)
    refused = [r for r in stack.records("nginx")
               if r.get("uri") == "/pc-builder-app/api/timing" and r.get("status") != 204]
    assert refused == []
