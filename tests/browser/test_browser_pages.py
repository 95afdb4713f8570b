"""The pages in a real browser (Debian's Chromium via Playwright) against ./stack up -d:
a phone-width layout without horizontal overflow and with readable banner text; the
builder checking a build as parts are picked (through the JSON API, under NGINX's
Content-Security-Policy), its verdict in view on a phone, the pickers marking what does
not fit, each verdict (a 429 from NGINX's rate limit included) naming its request; the
table sorted from its fields or its headers and searched as you type."""
from __future__ import annotations

import threading
import urllib.error
import urllib.request

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


BUILDS = "/api/builds"


def pick(page, selector, value):
    """Choose an option and return the answer of the check it causes."""
    with page.expect_response(lambda r: r.url.endswith(BUILDS)) as checked:
        page.select_option(selector, value)
    return checked.value


def in_viewport(page, selector) -> bool:
    box = page.locator(selector).bounding_box()
    viewport = page.viewport_size
    return bool(box) and box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"] \
        and box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"]


def test_builder_verdict_stays_in_view_on_a_phone(stack, phone):
    page = phone
    page.goto(stack.url + BASE + "/builder")
    page.wait_for_load_state("load")
    assert page.locator("#verdict-summary").is_hidden()  # nothing picked, nothing to say
    pick(page, "#pick-cpu", "2")
    pick(page, "#pick-case", "52")  # Mini-ITX, radiators up to 240 mm
    page.locator("#pick-cooler").scroll_into_view_if_needed()
    answer = pick(page, "#pick-cooler", "58")  # a 360 mm radiator
    rid = answer.headers["x-request-id"]
    summary = page.locator("#verdict-summary")
    summary.locator(f"code:text-is('{rid}')").wait_for()
    # The last picker is on screen and so is the verdict in brief, although the full
    # verdict is still below the screen.
    assert in_viewport(page, "#pick-cooler") and in_viewport(page, "#verdict-summary")
    assert page.locator("#build-result").bounding_box()["y"] > PHONE["height"]
    assert "✗ 1 compatibility problem" in summary.inner_text()
    assert "$878.98" in summary.inner_text()
    assert page.locator('#problems li[data-code="radiator_too_large"]').count() == 1
    assert page.locator("#build-result .verdict-request-id").inner_text() == rid
    assert page.locator("#request-id").inner_text() == rid  # the footer follows


def test_builder_pickers_mark_the_parts_that_cannot_work_with_the_picks(stack, desktop):
    page = desktop
    page.goto(stack.url + BASE + "/builder")
    page.wait_for_load_state("load")
    am4_board = page.locator('#pick-motherboard option[value="12"]')
    assert am4_board.get_attribute("data-conflict") is None

    pick(page, "#pick-cpu", "2")  # AM5
    page.wait_for_selector('#pick-motherboard option[value="12"][data-conflict]', state="attached")
    assert am4_board.get_attribute("data-conflict") == "socket does not match"
    assert am4_board.inner_text().endswith("— ✗ socket does not match")
    assert page.locator('#pick-motherboard option[value="9"]').get_attribute("data-conflict") is None
    assert page.locator("#pick-cpu option[data-conflict]").count() == 0  # nothing to clash with

    pick(page, "#pick-motherboard", "12")  # the chosen CPU is now marked in its own picker
    page.wait_for_selector('#pick-cpu option[value="2"][data-conflict]', state="attached")
    marked = page.eval_on_selector_all("#pick-cpu option[data-conflict]", "os => os.map(o => o.value)")
    assert marked == ["1", "2", "3", "6", "7", "8"]  # all but the AM4 CPUs

    pick(page, "#pick-motherboard", "")  # the board gone, the CPUs fit again
    page.wait_for_selector("#pick-cpu option[data-conflict]", state="detached")
    assert page.locator("#pick-cpu option").nth(2).inner_text() == "AMD Ryzen 7 7800X3D ($449.00)"
    assert console_problems(page.console_messages) == []


BANNER_JS = """() => Array.from(document.querySelectorAll(".banner p")).map(p => {
  const r = p.getBoundingClientRect(), b = p.closest(".banner").getBoundingClientRect();
  return {px: parseFloat(getComputedStyle(p).fontSize), inside: r.top >= b.top && r.bottom <= b.bottom
          && r.left >= b.left && r.right <= b.right, text: p.textContent};
})"""


@pytest.mark.parametrize("viewport", [PHONE, {"width": 1280, "height": 900}], ids=["phone", "desktop"])
def test_banner_text_is_readable(stack, browser, viewport):
    context = browser.new_context(viewport=viewport, is_mobile=viewport is PHONE, device_scale_factor=2)
    try:
        page = context.new_page()
        pictures = []
        page.on("response", lambda r: pictures.append(r.status) if r.url.endswith("/img/banner.svg") else None)
        page.goto(stack.url + BASE + "/main")
        page.wait_for_load_state("load")
        words = page.evaluate(BANNER_JS)
        assert [w["text"] for w in words] == [
            "PC Builder", "58 parts · 8 categories · compatibility checked as you pick"]
        assert all(w["inside"] for w in words), words
        assert min(w["px"] for w in words) >= 16, words  # was about 7 px on a phone
        assert pictures == [200]  # the picture behind them, from the stylesheet
    finally:
        context.close()


def categories_shown(page) -> list[str]:
    return page.eval_on_selector_all("#components-table tr.component-row", "rs => rs.map(r => r.dataset.category)")


def prices_shown(page) -> list[float]:
    return [float(t.strip("$").replace(",", "")) for t in
            page.locator("#components-table tr.component-row td.num").all_inner_texts()]


def wait_for_listing(page, url_part):
    page.wait_for_function("part => location.search.includes(part)", arg=url_part)
    page.wait_for_load_state("load")


def test_table_sorts_by_category_and_by_clicking_a_header(stack, desktop):
    page = desktop
    page.goto(stack.url + BASE + "/table")
    page.wait_for_load_state("load")
    page.evaluate("window.sameDocument = true")  # gone if the page navigates
    assert page.locator("button.apply").is_hidden()  # the list follows the fields by itself

    page.select_option("select[name=sort]", "name")
    wait_for_listing(page, "sort=name&order=asc")
    with page.expect_response(lambda r: "/table?" in r.url) as listed:
        page.select_option("select[name=sort]", "category")  # "Sort by: Category"
    assert listed.value.status == 200 and "sort=category&order=asc" in listed.value.url
    wait_for_listing(page, "sort=category&order=asc")
    page.wait_for_selector('th[aria-sort="ascending"] a[data-sort="category"]')
    assert page.locator("#filter-problems").count() == 0
    order = ["cpu", "motherboard", "ram", "gpu", "storage", "psu", "case", "cooler"]
    shown = categories_shown(page)
    assert len(shown) == 58 and shown == sorted(shown, key=order.index)
    page.select_option("select[name=order]", "desc")
    wait_for_listing(page, "sort=category&order=desc")
    page.wait_for_selector('th[aria-sort="descending"] a[data-sort="category"]')
    shown = categories_shown(page)
    assert len(shown) == 58 and shown == sorted(shown, key=order.index, reverse=True)

    page.click('thead a[data-sort="price"]')  # a header: ascending first
    wait_for_listing(page, "sort=price&order=asc")
    page.wait_for_selector('th[aria-sort="ascending"] a[data-sort="price"]')
    assert prices_shown(page) == sorted(prices_shown(page)) and len(prices_shown(page)) == 58
    assert page.locator("select[name=sort]").input_value() == "price"  # the fields follow
    page.click('thead a[data-sort="price"]')  # again: the other way
    wait_for_listing(page, "sort=price&order=desc")
    page.wait_for_selector('th[aria-sort="descending"] a[data-sort="price"]')
    assert prices_shown(page) == sorted(prices_shown(page), reverse=True)
    assert page.locator("select[name=order]").input_value() == "desc"
    assert page.evaluate("window.sameDocument") is True
    assert console_problems(page.console_messages) == []


def test_table_search_updates_as_you_type(stack, desktop):
    page = desktop
    page.goto(stack.url + BASE + "/table?category=gpu")
    page.wait_for_load_state("load")
    page_id = page.locator("#request-id").inner_text()
    assert page.locator('input[type="search"]').count() == 1  # one search, no second filter
    with page.expect_response(lambda r: "q=rtx+40" in r.url) as listed:
        page.locator("input[name=q]").press_sequentially("rtx 40", delay=20)
    wait_for_listing(page, "q=rtx+40")
    page.wait_for_function("() => document.querySelectorAll('#components-table tr.component-row').length === 6")
    assert "6 components matching “rtx 40”" in page.locator(".result-count").inner_text()
    assert page.locator("#request-id").inner_text() == listed.value.headers["x-request-id"] != page_id

    page.fill("input[name=q]", "")  # widening the search brings back what the page did not have
    page.wait_for_function("() => document.querySelectorAll('#components-table tr.component-row').length === 8")
    assert "q=" not in page.url and "category=gpu" in page.url


def test_table_search_sort_and_headers_work_without_javascript(stack, browser):
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(stack.url + BASE + "/table")
        assert page.locator("button.apply").is_visible()
        page.fill("input[name=q]", "corsair")
        page.select_option("select[name=sort]", "price")
        with page.expect_navigation():
            page.click("button.apply")
        assert "q=corsair" in page.url and "sort=price" in page.url
        assert page.locator("#components-table tr.component-row").count() == 5  # 2 RAM, 2 PSUs, a case
        with page.expect_navigation():
            page.click('thead a[data-sort="price"]')  # sorted ascending already: flips
        assert "order=desc" in page.url and "q=corsair" in page.url
        assert prices_shown(page) == sorted(prices_shown(page), reverse=True)
    finally:
        context.close()


def test_a_check_nginx_refuses_with_429_shows_its_request_id(stack, desktop):
    """The API allows 20 requests a second per address (burst 100): a flood from this
    address keeps the bucket empty while the builder checks a pick."""
    page = desktop
    page.goto(stack.url + BASE + "/builder")
    page.wait_for_load_state("load")
    stop = threading.Event()

    def flood():
        while not stop.is_set():
            try:
                urllib.request.urlopen(stack.url + BASE + "/api/components/1", timeout=5).close()
            except (urllib.error.URLError, OSError):
                pass

    threads = [threading.Thread(target=flood, daemon=True) for _ in range(6)]
    for t in threads:
        t.start()
    try:
        refused = None
        for attempt in range(40):
            answer = pick(page, "#pick-cpu", ["1", "2"][attempt % 2])
            if answer.status == 429:
                refused = answer
                break
        assert refused is not None, "NGINX never refused a check"
        rid = refused.headers["x-request-id"]
        error = page.locator("#form-errors")
        error.locator(f"code:text-is('{rid}')").wait_for()
        assert "too many requests" in error.inner_text()
        assert rid in page.locator("#verdict-summary").inner_text()
        assert page.locator("#request-id").inner_text() == rid
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
    nginx = [r for r in stack.records("nginx") if r.get("request_id") == rid]
    assert [r["status"] for r in nginx] == [429]
