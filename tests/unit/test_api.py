import io
import json
import re

import pytest

API = "/pc-builder-app/api"


def post_build(client, body, **kwargs):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    kwargs.setdefault("content_type", "application/json")
    return client.post(f"{API}/builds", data=data, **kwargs)


def assert_json_error(response, status):
    """The one error shape: exactly error, detail and the request id of the response."""
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error", "detail", "request_id"}, body
    assert isinstance(body["error"], str) and body["error"]
    assert body["detail"] is None or (isinstance(body["detail"], str) and body["detail"])
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


# --- components -------------------------------------------------------------------

def test_list_all_components(client):
    response = client.get(f"{API}/components")
    assert response.status_code == 200
    body = response.get_json()
    assert body["count"] == 58 and len(body["components"]) == 58
    first = body["components"][0]
    assert first == {"id": 1, "category": "cpu", "name": "Ryzen 5 7600X", "brand": "AMD",
                     "price": 199.99, "socket": "AM5", "tdp_w": 105}


def test_list_components_by_category(client):
    body = client.get(f"{API}/components?category=psu").get_json()
    assert body["count"] == 7
    assert {c["category"] for c in body["components"]} == {"psu"}
    assert all(isinstance(c["wattage"], int) for c in body["components"])


@pytest.mark.parametrize("category", ["gpus", "CPU", "'; DROP TABLE components; --"])
def test_unknown_category_is_400_listing_valid_ones(client, category):
    response = client.get(f"{API}/components", query_string={"category": category})
    body = assert_json_error(response, 400)
    assert body["error"] == "bad query parameter: category"
    assert "category must be one of cpu, motherboard, ram, gpu, storage, psu, case, cooler" \
        in body["detail"]


def test_empty_category_means_every_category_as_on_the_page(client):
    # The /table form sends category= for "All"; both read it the same way.
    assert client.get(f"{API}/components?category=").get_json()["count"] == 58


def row_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr class="component-row" data-id="(\d+)"', html)]


@pytest.mark.parametrize("query", [
    "q=rtx 40", "q=NOCTUA", "q=zzz-no-such-part", "q=%25", "q=_", "q=  corsair  ",
    "sort=price&order=desc", "sort=name&category=cooler", "category=ram&q=corsair&sort=price",
    "order=desc", "q=" + "a" * 100, "sort=category&order=desc", "sort=brand", "sort=id&order=desc",
])
def test_components_search_and_sort_as_the_table_page(client, query):
    page = row_ids(client.get(f"/pc-builder-app/table?{query}").get_data(as_text=True))
    response = client.get(f"{API}/components?{query}")
    assert response.status_code == 200
    body = response.get_json()
    assert [c["id"] for c in body["components"]] == page and body["count"] == len(page)


def test_components_search_sort_values(client):
    ids = [c["id"] for c in client.get(f"{API}/components?q=rtx 40").get_json()["components"]]
    assert ids == [24, 25, 26, 27, 28, 29]
    body = client.get(f"{API}/components?category=psu&sort=price&order=desc").get_json()
    prices = [c["price"] for c in body["components"]]
    assert len(prices) == 7 and prices == sorted(prices, reverse=True)


@pytest.mark.parametrize("query, named", [
    ("categroy=cpu", ["categroy"]),
    ("category=cpu&category=gpu", ["category"]),
    ("sort=price&sort=name", ["sort"]),
    ("limit=5&q=a&q=b", ["limit", "q"]),
    ("sort=evil", ["sort"]),
    ("order=up", ["order"]),
    ("sort=", ["sort"]),
    ("q=" + "a" * 101, ["q"]),
])
def test_unknown_repeated_or_bad_parameters_are_400_naming_them(client, query, named):
    body = assert_json_error(client.get(f"{API}/components?{query}"), 400)
    assert body["error"].startswith("bad query parameter")
    assert body["error"].split(": ", 1)[1].split(", ") == named
    for name in named:
        assert name in body["detail"]


@pytest.mark.parametrize("q", ["\x00", " \x00 ", "rtx\x00", "\x01", "\x1b[31m", "a\x7f", "a\x85b",
                               "rtx\t40"])
def test_control_characters_in_a_search_match_nothing(client, q):
    # SQLite's LIKE stops at a NUL: "%\x00%" used to match all 58 components.
    response = client.get(f"{API}/components", query_string={"q": q})
    assert response.status_code == 200
    assert response.get_json() == {"components": [], "count": 0}
    html = client.get("/pc-builder-app/table", query_string={"q": q}).get_data(as_text=True)
    assert row_ids(html) == [] and "No components match." in html


def test_get_component(client):
    response = client.get(f"{API}/components/29")
    assert response.status_code == 200
    assert response.get_json()["name"] == "Gaming GeForce RTX 4090 Trinity OC"


@pytest.mark.parametrize("component_id", ["0", "59", "99999", "9" * 19, "-1", "-59"])
def test_unknown_component_is_404_naming_the_id(client, component_id):
    body = assert_json_error(client.get(f"{API}/components/{component_id}"), 404)
    assert body == {"error": "unknown component",
                    "detail": f"no component with id {int(component_id)}",
                    "request_id": body["request_id"]}


@pytest.mark.parametrize("digits", [20, 40, 4301, 5000])
def test_huge_component_id_is_404_without_python_internals(client, digits):
    body = assert_json_error(client.get(f"{API}/components/{'9' * digits}"), 404)
    assert body["error"] == "unknown component"
    assert body["detail"] == f"no component with id {'9' * 24}… ({digits} characters)" \
        if digits > 24 else f"no component with id {'9' * digits}"
    assert "int_max_str_digits" not in json.dumps(body)


@pytest.mark.parametrize("raw, shown", [("abc", "'abc'"), ("1.5", "'1.5'"), ("0x10", "'0x10'"),
                                        ("%D9%A3", "'\u0663'")])
def test_component_id_that_is_not_a_number_is_explained(client, raw, shown):
    body = assert_json_error(client.get(f"{API}/components/{raw}"), 404)
    assert body["error"] == "unknown component"
    assert body["detail"] == f"{shown} is not a component id: ids are whole numbers"


def test_unknown_api_route_and_method_are_json(client):
    body = assert_json_error(client.get(f"{API}/nope"), 404)
    assert body["error"] == "not found" and body["detail"] == f"no API endpoint at {API}/nope"
    assert assert_json_error(client.get(API), 404)["error"] == "not found"
    response = client.get(f"{API}/builds")
    body = assert_json_error(response, 405)
    assert body["error"] == "method not allowed"
    assert body["detail"] == "GET is not allowed here; use POST"
    assert "POST" in response.headers["Allow"]
    body = assert_json_error(client.delete(f"{API}/components/1"), 405)
    assert body["detail"] == "DELETE is not allowed here; use GET"


def test_api_error_quotes_at_most_a_little_of_a_huge_path(client):
    body = assert_json_error(client.get(f"{API}/x" + "y" * 20_000), 404)
    assert len(body["detail"]) < 200


def test_pages_404_stays_html(client):
    response = client.get("/pc-builder-app/nope")
    assert response.status_code == 404
    assert response.mimetype == "text/html"


# --- builds -----------------------------------------------------------------------

def test_build_ok(client):
    response = post_build(client, {"components": {"cpu": 2, "motherboard": 9, "ram": 17}})
    assert response.status_code == 200
    body = response.get_json()
    assert [c["id"] for c in body["components"]] == [2, 9, 17]
    assert body["total_price"] == round(449.00 + 249.99 + 104.99, 2)
    assert body["problems"] == []
    assert body["missing"] == ["gpu", "storage", "psu", "case", "cooler"]


def test_build_reports_problems(client):
    body = post_build(client, {"components": {
        "cpu": 6, "motherboard": 12, "ram": 17, "case": 50, "gpu": 29, "psu": 44,
    }}).get_json()
    assert [p["code"] for p in body["problems"]] == [
        "socket_mismatch", "ram_type_mismatch", "psu_insufficient", "form_factor_mismatch"]


def test_build_catches_a_radiator_the_case_cannot_hold(client):
    body = post_build(client, {"components": {"case": 52, "cooler": 58}}).get_json()
    assert [p["code"] for p in body["problems"]] == ["radiator_too_large"]


def test_build_names_the_options_that_conflict_with_the_picks(client):
    body = post_build(client, {"components": {"cpu": 2, "case": 52}}).get_json()
    conflicts = body["conflicts"]
    assert set(conflicts) == {"motherboard", "cooler"}
    boards = {c["id"]: c for c in conflicts["motherboard"]}
    assert boards[12] == {"id": 12, "codes": ["socket_mismatch", "form_factor_mismatch"],
                          "note": "socket does not match; board and case sizes do not match"}
    assert boards[14]["codes"] == ["socket_mismatch"]  # LGA1700 Mini-ITX: fits the case only
    assert boards[9]["codes"] == ["form_factor_mismatch"]  # AM5 ATX: fits the CPU only
    assert sorted(boards) == list(range(9, 17))  # no AM5 Mini-ITX board in the catalog
    assert [c["id"] for c in conflicts["cooler"]] == [57, 58]
    assert post_build(client, {"components": {}}).get_json()["conflicts"] == {}


def test_empty_and_null_selection(client):
    body = post_build(client, {"components": {}}).get_json()
    assert body["components"] == [] and body["total_price"] == 0
    assert len(body["missing"]) == 8
    body = post_build(client, {"components": {"cpu": 1, "gpu": None}}).get_json()
    assert [c["id"] for c in body["components"]] == [1]
    assert "gpu" in body["missing"]


@pytest.mark.parametrize("raw", [
    "{", "not json", '{"components": {"cpu": 1,}}', "", b"\xff\xfe\x00garbage",
    "[" * 30_000,  # unterminated and very deep
    "[" * 20_000 + "]" * 20_000,  # valid JSON, too deep for the parser
])
def test_malformed_json_is_400(client, raw):
    body = assert_json_error(post_build(client, raw), 400)
    assert "JSON" in body["error"]


@pytest.mark.parametrize("body", [[1, 2, 3], "cpu", 42, None, True])
def test_body_must_be_object(client, body):
    assert_json_error(post_build(client, body), 400)


@pytest.mark.parametrize("body", [
    {}, {"components": [1, 9]}, {"components": "1,9"}, {"components": None},
])
def test_components_must_be_an_object(client, body):
    assert_json_error(post_build(client, body), 400)


@pytest.mark.parametrize("value", [True, False, "1", 1.0, 1.5, [1], {"id": 1}])
def test_ids_must_be_integers_not_bools(client, value):
    body = assert_json_error(post_build(client, {"components": {"cpu": value}}), 400)
    assert body["error"] == "component ids must be integers (or null for none)"
    assert body["detail"] == "not an integer: cpu"


def test_unknown_category_key_is_400(client):
    body = assert_json_error(post_build(client, {"components": {"cpu": 1, "monitor": 3}}), 400)
    assert body["error"] == 'unknown categories in "components": monitor'
    assert body["detail"].startswith("valid categories: cpu, motherboard,")


def test_unknown_ids_are_422_naming_slot_and_id(client):
    body = assert_json_error(
        post_build(client, {"components": {"cpu": 1, "gpu": 999, "ram": -5, "psu": 10**30}}), 422)
    assert body["error"] == "some components cannot be used"
    for slot, component_id in [("gpu", 999), ("ram", -5), ("psu", 10**30)]:
        assert f"{slot}: No component with id {component_id}." in body["detail"]
    assert "cpu:" not in body["detail"]


def test_wrong_category_is_422(client):
    body = assert_json_error(post_build(client, {"components": {"cpu": 9}}), 422)
    assert body["detail"] == ("cpu: Component 9 (ROG Strix B650E-F Gaming WiFi) is a "
                              "motherboard, not a cpu.")


@pytest.mark.parametrize("raw, key", [
    ('{"components": {"cpu": 1, "cpu": 4}}', "cpu"),
    ('{"components": {"cpu": 1}, "components": {"cpu": 4}}', "components"),
    ('{"components": {"cpu": 1, "gpu": null, "gpu": 24}}', "gpu"),
])
def test_duplicate_json_keys_are_400_naming_the_key(client, raw, key):
    body = assert_json_error(post_build(client, raw), 400)
    assert body["error"] == "duplicate key in JSON"
    assert body["detail"] == f"key {key!r} appears more than once in one object"


def test_not_json_content_type_is_415(client):
    response = client.post(f"{API}/builds", data={"cpu": "1"})
    body = assert_json_error(response, 415)
    assert "application/json" in body["detail"]


def test_huge_body_is_413_json(client):
    padding = "x" * (65 * 1024)
    response = post_build(client, {"components": {"cpu": 1}, "padding": padding})
    body = assert_json_error(response, 413)
    assert body["detail"] == "the request body is over the limit of 65536 bytes"


def test_huge_chunked_body_is_413_json(client):
    """No Content-Length: Werkzeug cuts the stream at the limit; the cut-off prefix here
    would be valid JSON, so it must be refused, not parsed."""
    data = b'{"components": {}}' + b" " * (70 * 1024)
    response = client.post(f"{API}/builds", input_stream=io.BytesIO(data),
                           content_type="application/json",
                           headers={"Transfer-Encoding": "chunked"},
                           environ_base={"wsgi.input_terminated": True})
    assert_json_error(response, 413)


def test_bad_input_never_logs_a_500(client, log_lines):
    for raw in ["{", "[]", '{"components": {"cpu": true}}', "[" * 20_000 + "]" * 20_000,
                '{"components": {"cpu": 1, "cpu": 2}}']:
        assert post_build(client, raw).status_code < 500
    for path in ["/components/" + "9" * 5000, "/components?q=%00", "/components?x=1&x=2"]:
        assert client.get(API + path).status_code < 500
    assert log_lines("request.failed") == []
    statuses = {line["status"] for line in log_lines("request.finished")}
    assert statuses == {400, 404, 200}


# --- one error shape for every error under the API prefix -----------------------------

def test_unexpected_exception_is_500_in_the_error_shape_and_logged(app, log_lines):
    def boom():
        raise RuntimeError("kaputt")

    app.add_url_rule(f"{API}/test-boom", "test_api_boom", boom)
    response = app.test_client().get(f"{API}/test-boom")
    body = assert_json_error(response, 500)
    assert body["error"] == "internal server error" and "kaputt" not in json.dumps(body)
    failed = log_lines("request.failed")[-1]
    assert failed["logger"] == "pcbuilder.request" and failed["level"] == "ERROR"
    assert failed["error"] == "RuntimeError" and "kaputt" in failed["traceback"]
    assert failed["request_id"] == body["request_id"]
    assert failed["route"] == f"{API}/test-boom"


def test_timing_beacon_errors_have_the_shape(client):
    response = client.post(f"{API}/timing", data="{}", content_type="text/plain")
    body = assert_json_error(response, 400)
    assert body["error"].startswith("missing field(s)")


def test_timing_beacon_with_a_repeated_key_is_refused(client):
    raw = ('{"request_id": "page-0123456789", "request_id": "other-0123456789", "timeOrigin":'
           ' 1732484426123, "requestStart": 1, "responseStart": 2, "responseEnd": 3}')
    body = assert_json_error(client.post(f"{API}/timing", data=raw, content_type="text/plain"), 400)
    assert body["error"] == "a JSON object repeats a key"


@pytest.mark.parametrize("method, path, kwargs", [
    ("get", "/nope", {}),
    ("get", "/components/abc", {}),
    ("get", "/components?bogus=1", {}),
    ("post", "/components", {}),
    ("post", "/builds", {"data": "x", "content_type": "text/plain"}),
    ("post", "/builds", {"data": "{", "content_type": "application/json"}),
    ("post", "/builds", {"data": '{"components": {"cpu": 999}}', "content_type": "application/json"}),
    ("post", "/builds", {"data": "x" * 70_000, "content_type": "application/json"}),
    ("put", "/timing", {}),
])
def test_every_app_error_under_the_api_has_one_shape(client, method, path, kwargs):
    response = getattr(client, method)(API + path, **kwargs)
    assert response.status_code >= 400
    assert_json_error(response, response.status_code)
