import re

import pytest

from pcbuilder.catalog import COMPONENTS

BASE = "/pc-builder-app"


def row_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr class="component-row" data-id="(\d+)"', html)]


def test_root_redirects_to_main(client):
    response = client.get(f"{BASE}/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"{BASE}/main")


def test_main_page(client):
    response = client.get(f"{BASE}/main")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    # The banner's words are HTML (sized by the stylesheet), its picture the background.
    assert '<p class="banner-title">PC Builder</p>' in html
    assert "58 parts · 8 categories · compatibility checked as you pick" in html
    assert f'href="{BASE}/table"' in html and f'href="{BASE}/builder"' in html


def test_banner_picture_is_the_stylesheets_and_holds_no_text(client):
    css = client.get(f"{BASE}/static/css/app.css").get_data(as_text=True)
    assert 'url("../img/banner.svg")' in css
    svg = client.get(f"{BASE}/static/img/banner.svg").get_data(as_text=True)
    assert "<text" not in svg


def test_base_layout_has_request_id_assets_and_no_inline_code(client):
    response = client.get(f"{BASE}/main")
    html = response.get_data(as_text=True)
    rid = response.headers["X-Request-ID"]
    assert f'<meta name="request-id" content="{rid}">' in html
    assert f'<link rel="stylesheet" href="{BASE}/static/css/app.css">' in html
    assert f'<script src="{BASE}/static/js/app.js" defer></script>' in html
    assert f'{BASE}/static/img/favicon.svg' in html


@pytest.mark.parametrize("path", ["/main", "/table", "/builder?cpu=6&motherboard=9&psu=44&gpu=29",
                                  "/nope", "/table?sort=evil", "/builder?cpu=abc"])
def test_pages_are_csp_friendly(client, path):
    html = client.get(BASE + path).get_data(as_text=True)
    assert "style=" not in html and "<style" not in html
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []  # no inline scripts
    assert not re.search(r"\son[a-z]+=", html)  # no inline event handlers


@pytest.mark.parametrize("asset", ["css/app.css", "js/app.js", "img/banner.svg", "img/favicon.svg"])
def test_static_assets_served(client, asset):
    response = client.get(f"{BASE}/static/{asset}")
    assert response.status_code == 200
    assert response.get_data()
    response.close()


def test_app_js_beacons_to_the_timing_endpoint(client):
    response = client.get(f"{BASE}/static/js/app.js")
    assert f'navigator.sendBeacon("{BASE}/api/timing"' in response.get_data(as_text=True)
    response.close()
    # the endpoint it names exists (an empty beacon is refused, not unknown)
    assert client.post(f"{BASE}/api/timing", data="{}", content_type="text/plain").status_code == 400


def test_table_renders_all_58_rows(client, log_lines):
    response = client.get(f"{BASE}/table")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'id="components-table"' in html
    assert row_ids(html) == list(range(1, 59))
    assert "Ryzen 7 7800X3D" in html and "$1,799.99" in html

    finished = log_lines("request.finished")
    assert len(finished) == 1 and not log_lines("components.retrieved")  # DEBUG only
    assert finished[0]["components"] == 58
    assert finished[0]["request_id"] == response.headers["X-Request-ID"]


def test_table_category_filter(client, log_lines):
    html = client.get(f"{BASE}/table?category=gpu").get_data(as_text=True)
    assert row_ids(html) == list(range(24, 32))
    assert log_lines("request.finished")[-1]["components"] == 8


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_table_sort_by_price(client, order):
    html = client.get(f"{BASE}/table?sort=price&order={order}").get_data(as_text=True)
    by_id = {c["id"]: c["price"] for c in COMPONENTS}
    prices = [by_id[i] for i in row_ids(html)]
    assert len(prices) == 58
    assert prices == sorted(prices, reverse=(order == "desc"))


def test_table_sort_by_name(client):
    html = client.get(f"{BASE}/table?sort=name&category=cooler").get_data(as_text=True)
    by_id = {c["id"]: c["name"] for c in COMPONENTS}
    names = [by_id[i] for i in row_ids(html)]
    assert names == sorted(names, key=str.lower) and len(names) == 6


def test_table_search(client):
    html = client.get(f"{BASE}/table?q=rtx 40").get_data(as_text=True)
    assert row_ids(html) == [24, 25, 26, 27, 28, 29]
    html = client.get(f"{BASE}/table?q=NOCTUA").get_data(as_text=True)
    assert row_ids(html) == [53]
    html = client.get(f"{BASE}/table?q=zzz-no-such-part").get_data(as_text=True)
    assert row_ids(html) == [] and "No components match." in html


def test_table_search_combined_with_category(client):
    html = client.get(f"{BASE}/table?category=ram&q=corsair&sort=price").get_data(as_text=True)
    assert row_ids(html) == [20, 17]


def test_table_ignores_bad_parameters(client):
    html = client.get(f"{BASE}/table?category=toaster&sort=evil&order=up").get_data(as_text=True)
    assert row_ids(html) == list(range(1, 59))


def test_table_says_which_filters_it_could_not_use(client):
    response = client.get(f"{BASE}/table?category=gpu&category=cpu&sort=evil&utm_source=x")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert row_ids(html) == list(range(24, 32))  # the first category, the default sort
    notice = html[html.index('id="filter-problems"'):html.index('id="components-table"')]
    assert "category is given 2 times; give it once" in notice
    assert "sort must be one of id, category, name, brand, price, not &#39;evil&#39;" in notice
    assert "utm_source" not in notice  # names it does not know are none of its business
    assert 'id="filter-problems"' not in client.get(f"{BASE}/table?category=gpu").get_data(as_text=True)


def test_table_sort_by_category_is_a_sort_the_page_accepts(client):
    html = client.get(f"{BASE}/table?category=&q=&sort=category&order=desc").get_data(as_text=True)
    assert 'id="filter-problems"' not in html
    ids = row_ids(html)
    assert ids[:6] == [53, 54, 55, 56, 57, 58] and ids[-8:] == list(range(1, 9))  # coolers .. CPUs
    assert '<option value="category" selected>Category</option>' in html


def headers(html: str) -> dict[str, tuple[str | None, str]]:
    """Each sortable header: its aria-sort and where its link goes."""
    return {label: (sort or None, href.replace("&amp;", "&")) for sort, href, label in re.findall(
        r'<th scope="col"(?: class="num")?(?: aria-sort="(\w+)")?>\s*<a class="sort" href="([^"]+)"'
        r' data-sort="\w+">(\w+)</a></th>', html)}


def test_table_headers_sort_by_their_column_and_say_how_it_is_sorted(client):
    html = client.get(f"{BASE}/table").get_data(as_text=True)
    assert headers(html) == {
        "Category": ("ascending", f"{BASE}/table?sort=category&order=desc"),
        "Name": (None, f"{BASE}/table?sort=name&order=asc"),
        "Brand": (None, f"{BASE}/table?sort=brand&order=asc"),
        "Price": (None, f"{BASE}/table?sort=price&order=asc"),
    }
    # The filters are kept; the column sorted on flips its order.
    html = client.get(f"{BASE}/table?category=gpu&q=rtx&sort=price&order=asc").get_data(as_text=True)
    cols = headers(html)
    assert cols["Price"] == ("ascending", f"{BASE}/table?category=gpu&q=rtx&sort=price&order=desc")
    assert cols["Name"] == (None, f"{BASE}/table?category=gpu&q=rtx&sort=name&order=asc")
    html = client.get(cols["Price"][1]).get_data(as_text=True)
    assert headers(html)["Price"][0] == "descending"
    by_id = {c["id"]: c["price"] for c in COMPONENTS}
    prices = [by_id[i] for i in row_ids(html)]
    assert len(prices) == 6 and prices == sorted(prices, reverse=True)


def test_table_has_one_search_field(client):
    html = client.get(f"{BASE}/table?q=corsair").get_data(as_text=True)
    assert len(re.findall(r'<input type="search"', html)) == 1
    assert 'name="q" value="corsair"' in html
    assert "Quick filter" not in html and 'id="table-filter"' not in html
    assert "matching “corsair”" in html


@pytest.mark.parametrize("q", ["%00", "rtx%00", "%01", "%00%20"])
def test_table_search_with_control_characters_matches_nothing(client, q):
    html = client.get(f"{BASE}/table?q={q}").get_data(as_text=True)
    assert row_ids(html) == [] and "No components match." in html


def test_table_escapes_search_text(client):
    html = client.get(f"{BASE}/table", query_string={"q": '"><script>x</script>'}).get_data(as_text=True)
    assert "<script>x</script>" not in html


def test_builder_form(client):
    html = client.get(f"{BASE}/builder").get_data(as_text=True)
    for category in ["cpu", "motherboard", "ram", "gpu", "storage", "psu", "case", "cooler"]:
        assert f'name="{category}"' in html
    assert 'id="build-result"' not in html
    assert len(re.findall(r'<option value="\d+"', html)) == 58


def test_builder_compatible_build(client):
    html = client.get(f"{BASE}/builder?cpu=2&motherboard=9&ram=17&gpu=26&storage=32"
                      f"&psu=40&case=46&cooler=53").get_data(as_text=True)
    assert 'id="no-problems"' in html
    assert 'id="missing"' not in html
    total = 449.00 + 249.99 + 104.99 + 599.99 + 169.99 + 139.99 + 139.99 + 109.95
    assert f'<td class="num" id="total-price">${total:,.2f}</td>' in html
    assert re.search(r'<option value="2" [^>]*selected>', html)


def test_builder_shows_problems_and_missing(client):
    html = client.get(f"{BASE}/builder?cpu=6&motherboard=9&psu=44&gpu=29").get_data(as_text=True)
    assert 'data-code="socket_mismatch"' in html
    assert 'data-code="psu_insufficient"' in html
    assert 'data-code="ram_type_mismatch"' not in html
    assert 'id="missing"' in html and "Memory" in html


def form_errors(html: str) -> list[str]:
    if 'id="form-errors"' not in html:
        return []
    block = html[html.index('id="form-errors"'):]
    block = block[:block.index("</ul>")]
    return re.findall(r"<li>(.*?)</li>", block)


def assert_no_verdict(html: str):
    assert 'id="build-result"' not in html
    assert 'id="no-problems"' not in html and "No compatibility problems found." not in html
    assert 'id="total-price"' not in html and "Total" not in html
    assert "at least" not in html and "Estimated draw" not in html


def test_builder_bad_input_is_explained_not_500(client):
    response = client.get(f"{BASE}/builder?cpu=abc&gpu=999&ram=1&psu=" + "9" * 40)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert form_errors(html) == [
        "CPU: &#39;abc&#39; is not a component id.",
        "Memory: Component 1 (Ryzen 5 7600X) is a cpu, not a ram.",
        "Graphics card: No component with id 999.",
        "Power supply: &#39;" + "9" * 40 + "&#39; is not a component id.",
    ]
    assert_no_verdict(html)


@pytest.mark.parametrize("query, errors", [
    ("cpu=999999&motherboard=abc", ["CPU: No component with id 999999.",
                                    "Motherboard: &#39;abc&#39; is not a component id."]),
    ("gpu=1", ["Graphics card: Component 1 (Ryzen 5 7600X) is a cpu, not a gpu."]),
    ("cpu=2&motherboard=9&ram=999999", ["Memory: No component with id 999999."]),
    ("cpu=1&cpu=6", ["CPU: chosen 2 times (1, 6); choose one."]),
    ("cpu=1&motherboard=9&cpu=1", ["CPU: chosen 2 times (1, 1); choose one."]),
])
def test_builder_with_input_errors_names_the_slot_and_gives_no_verdict(client, query, errors):
    html = client.get(f"{BASE}/builder?{query}").get_data(as_text=True)
    assert form_errors(html) == errors
    assert_no_verdict(html)
    assert "Fix these choices to see the price and the compatibility check." in html


def test_builder_keeps_valid_choices_selected_next_to_errors(client):
    html = client.get(f"{BASE}/builder?cpu=2&motherboard=999999").get_data(as_text=True)
    assert re.search(r'<option value="2" data-specs="AM5 · 120 W TDP" data-label="[^"]+" selected>', html)
    assert_no_verdict(html)


def test_builder_options_carry_what_app_js_needs(client):
    html = client.get(f"{BASE}/builder").get_data(as_text=True)
    assert f'data-check-url="{BASE}/api/builds"' in html
    assert ('<option value="29" data-specs="24 GB VRAM · 450 W TDP" '
            'data-label="Zotac Gaming GeForce RTX 4090 Trinity OC ($1,799.99)">') in html
    assert len(re.findall(r'<option value="\d+" data-specs="[^"]+" data-label="[^"]+"', html)) == 58
    assert "data-conflict" not in html  # nothing picked, nothing to clash with


def option_notes(html: str, category: str) -> dict[int, str]:
    select = html[html.index(f'<select id="pick-{category}"'):]
    select = select[:select.index("</select>")]
    return {int(i): note for i, note in re.findall(
        r'<option value="(\d+)"[^>]* data-conflict="([^"]+)"', select)}


def test_builder_marks_the_options_that_cannot_work_with_the_parts_picked(client):
    html = client.get(f"{BASE}/builder?cpu=2&case=52").get_data(as_text=True)  # AM5, Mini-ITX 240 mm
    assert option_notes(html, "cooler") == {57: "radiator too large for the case",
                                            58: "radiator too large for the case"}
    assert option_notes(html, "motherboard")[14] == "socket does not match"
    assert option_notes(html, "cpu") == {} and option_notes(html, "gpu") == {}
    # the label says it too, for a picker that cannot be styled
    assert "Kraken Elite 360 ($279.99) — ✗ radiator too large for the case</option>" in html


def test_builder_verdict_and_its_summary_carry_the_request_id(client):
    response = client.get(f"{BASE}/builder?case=52&cooler=58")
    html = response.get_data(as_text=True)
    rid = response.headers["X-Request-ID"]
    assert 'data-code="radiator_too_large"' in html
    summary = html[html.index('id="verdict-summary"'):html.index('id="build-result"')]
    assert "✗ 1 compatibility problem" in summary and "$429.98" in summary
    assert f'<code class="verdict-request-id">{rid}</code>' in summary
    result = html[html.index('id="build-result"'):]
    assert f'Checked by request <code class="verdict-request-id">{rid}</code>' in result
    # Nothing picked: the summary is there for app.js, hidden.
    html = client.get(f"{BASE}/builder").get_data(as_text=True)
    assert re.search(r'id="verdict-summary"\s+aria-live="polite" hidden>', html)


def test_builder_input_errors_carry_the_request_id(client):
    response = client.get(f"{BASE}/builder?cpu=abc")
    html = response.get_data(as_text=True)
    errors = html[html.index('id="form-errors"'):]
    assert f'<code class="verdict-request-id">{response.headers["X-Request-ID"]}</code>' in errors
    assert 'class="verdict-summary bad"' in html


def test_app_js_checks_builds_through_the_check_url(client):
    response = client.get(f"{BASE}/static/js/app.js")
    js = response.get_data(as_text=True)
    response.close()
    assert 'getAttribute("data-check-url")' in js and 'addEventListener("change"' in js
    assert "innerHTML" not in js  # text goes in as text nodes, never parsed as HTML


@pytest.mark.parametrize("path, status, title", [
    ("/nope", 404, "Not Found"),
    ("/components/1", 404, "Not Found"),
    ("/table/", 404, "Not Found"),
])
def test_page_errors_have_the_layout_and_the_request_id(client, path, status, title):
    response = client.get(BASE + path)
    assert response.status_code == status and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    rid = response.headers["X-Request-ID"]
    assert f'<meta name="request-id" content="{rid}">' in html
    assert '<nav class="site-nav">' in html and f'href="{BASE}/table"' in html
    assert f"<h1>{title}</h1>" in html and "There is no page at this address." in html
    assert html.count(rid) >= 3  # meta, message, footer
    assert "requested URL was not found on the server" not in html


def test_page_405_has_the_layout(client):
    response = client.post(f"{BASE}/main")
    assert response.status_code == 405 and "GET" in response.headers["Allow"]
    html = response.get_data(as_text=True)
    assert "This page does not accept POST requests." in html
    assert '<nav class="site-nav">' in html and response.headers["X-Request-ID"] in html


def test_500_page_is_standalone_and_shows_request_id(app, client, log_lines):
    app.config["DATABASE"] = "/nonexistent/dir/db.sqlite3"  # every query now fails
    response = client.get(f"{BASE}/table")
    assert response.status_code == 500
    html = response.get_data(as_text=True)
    rid = response.headers["X-Request-ID"]
    assert "Something went wrong" in html
    assert rid in html
    assert log_lines("request.failed")[-1]["request_id"] == rid


@pytest.mark.parametrize("path", [f"{BASE}/main", f"{BASE}/no-such-page"])
def test_a_host_the_app_cannot_route_still_gets_an_answer_with_the_request_id(app, path, log_lines):
    """Werkzeug builds no URL adapter for this Host, so the error page's url_for fails; the
    handler must still answer (before, no response at all: uWSGI dropped the connection
    and NGINX counted the instance as failed)."""
    app.testing = False  # answer as in production instead of raising into the test
    client = app.test_client()
    rid = "bad-host-0001"
    response = client.get(path, headers={"Host": "a" * 64 + ".example"},
                          environ_overrides={"REQUEST_ID": rid})
    assert response.status_code == 400
    assert rid in response.get_data(as_text=True)
    assert log_lines("error_page.failed")[-1]["request_id"] == rid
