"""The pages in a real browser (Debian's Chromium via Playwright) against ./stack up -d:
a phone-width layout without horizontal overflow, and the builder checking a build as
parts are picked (through the JSON API, under NGINX's Content-Security-Policy)."""
from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.integration]

BASE = "/pc-builder-app"
PHONE = {"width": 375, "height": 812}

# Every rendered element's box, measured against the viewport: a page may not be wider
# than the phone, and no element may stick out of it (so nothing is merely clipped by an
# overflow rule on the body while still being unreachable).
MEASURE_JS = """() => {
  const width = document.documentElement.clientWidth;
  const outside = [];
  for (const el of document.body.querySelectorAll("*")) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.left < -0.5 || r.right > width + 0.5) {
      outside.push(`${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}` +
                   `.${el.className} ${Math.round(r.left)}..${Math.round(r.right)}`);
    }
  }
  return {scrollWidth: document.documentElement.scrollWidth, clientWidth: width,
          outside: outside.slice(0, 8)};
}"""

PHONE_PAGES = [
    "/main",
    "/table",
    "/table?category=gpu&sort=price&order=desc",
    "/builder",
    "/builder?cpu=6&motherboard=12&ram=17&gpu=29&storage=32&psu=44&case=50&cooler=58",
    "/builder?cpu=999999&motherboard=abc",
    "/builder?cpu=1&cpu=6&ram=" + "x" * 60,  # long words in the error list
    "/table?sort=" + "x" * 60,
    "/no-such-page",
]


def console_problems(messages: list[str]) -> list[str]:
    return [m for m in messages if "Content Security Policy" in m or "Refused to" in m]


@pytest.fixture
def phone(browser):
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True,
                                  device_scale_factor=2)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def desktop(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.console_messages = []
        page.on("console", lambda msg: page.console_messages.append(msg.text))
        yield page
    finally:
        context.close()


@pytest.mark.parametrize("path", PHONE_PAGES)
def test_pages_fit_a_phone_without_horizontal_overflow(stack, phone, path):
    response = phone.goto(stack.url + BASE + path)
    assert response.status in (200, 404)
    phone.wait_for_load_state("load")
    measured = phone.evaluate(MEASURE_JS)
    assert measured["clientWidth"] == PHONE["width"], measured
    assert measured["scrollWidth"] <= PHONE["width"], measured
    assert measured["outside"] == [], measured


def test_table_prices_are_on_screen_on_a_phone(stack, phone):
    phone.goto(stack.url + BASE + "/table")
    phone.wait_for_load_state("load")
    prices = phone.locator("#components-table tr.component-row td.num")
    assert prices.count() == 58
    box = prices.first.bounding_box()
    assert box and box["width"] > 0 and box["x"] + box["width"] <= PHONE["width"]
    assert prices.first.inner_text() == "$199.99"


def test_builder_checks_the_build_as_parts_are_picked(stack, desktop):
    page = desktop
    page.goto(stack.url + BASE + "/builder")
    page.wait_for_load_state("load")
    assert page.locator("#build-result").count() == 0
    page.evaluate("window.sameDocument = true")  # gone if the page navigates

    with page.expect_response(lambda r: r.url.endswith("/api/builds")) as checked:
        page.select_option("#pick-cpu", "2")
    assert checked.value.status == 200 and checked.value.request.method == "POST"
    page.wait_for_selector("#no-problems")
    assert page.locator("#total-price").inner_text() == "$449.00"
    assert page.locator("#build-result tr.build-part").count() == 1

    with page.expect_response(lambda r: r.url.endswith("/api/builds")):
        page.select_option("#pick-motherboard", "12")  # an AM4 board for an AM5 CPU
    page.wait_for_selector('#problems li[data-code="socket_mismatch"]')
    assert page.locator("#no-problems").count() == 0
    assert page.locator("#total-price").inner_text() == "$548.99"
    assert "Power supply" in page.locator("#missing").inner_text()
    assert page.evaluate("window.sameDocument") is True

    # The address stays a shareable build: loading it renders the same verdict server-side.
    assert page.url.endswith(BASE + "/builder?cpu=2&motherboard=12")
    page.goto(page.url)
    assert page.locator('#problems li[data-code="socket_mismatch"]').count() == 1
    assert page.locator("#total-price").inner_text() == "$548.99"
    assert console_problems(page.console_messages) == []


def test_builder_check_replaces_earlier_input_errors(stack, desktop):
    page = desktop
    page.goto(stack.url + BASE + "/builder?cpu=999999&gpu=1")
    page.wait_for_load_state("load")
    assert "CPU: " in page.locator("#form-errors").inner_text()
    assert page.locator("#build-result").count() == 0  # no verdict while input is wrong

    with page.expect_response(lambda r: r.url.endswith("/api/builds")):
        page.select_option("#pick-gpu", "24")
    page.wait_for_selector("#no-problems")
    assert page.locator("#form-errors").count() == 0
    assert page.locator("#total-price").inner_text() == "$299.99"

    page.select_option("#pick-gpu", "")  # nothing chosen: nothing to judge
    page.wait_for_selector("#build-result", state="detached")
    assert page.url.endswith(BASE + "/builder")
    assert console_problems(page.console_messages) == []


def test_builder_works_without_javascript(stack, browser):
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        api_calls = []
        page.on("request", lambda r: api_calls.append(r.url) if "/api/builds" in r.url else None)
        page.goto(stack.url + BASE + "/builder")
        page.select_option("#pick-cpu", "2")
        assert page.locator("#build-result").count() == 0  # nothing happens until submit
        with page.expect_navigation():
            page.click("form.builder button[type=submit]")
        assert "cpu=2" in page.url
        assert page.locator("#total-price").inner_text() == "$449.00"
        assert api_calls == []
    finally:
        context.close()
