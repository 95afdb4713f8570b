import io
import json

import pytest

API = "/pc-builder-app/api"


def post_build(client, body, **kwargs):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    kwargs.setdefault("content_type", "application/json")
    return client.post(f"{API}/builds", data=data, **kwargs)


def assert_json_error(response, status):
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert isinstance(body["error"], str) and body["error"]
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


@pytest.mark.parametrize("category", ["gpus", "CPU", "", "'; DROP TABLE components; --"])
def test_unknown_category_is_400_listing_valid_ones(client, category):
    response = client.get(f"{API}/components", query_string={"category": category})
    body = assert_json_error(response, 400)
    assert body["valid_categories"] == ["cpu", "motherboard", "ram", "gpu", "storage",
                                        "psu", "case", "cooler"]


def test_get_component(client):
    response = client.get(f"{API}/components/29")
    assert response.status_code == 200
    assert response.get_json()["name"] == "Gaming GeForce RTX 4090 Trinity OC"


@pytest.mark.parametrize("component_id", ["0", "59", "99999", "9" * 40])
def test_unknown_component_is_404_json(client, component_id):
    assert_json_error(client.get(f"{API}/components/{component_id}"), 404)


def test_unknown_api_route_and_method_are_json(client):
    assert_json_error(client.get(f"{API}/nope"), 404)
    assert_json_error(client.get(f"{API}/components/abc"), 404)
    response = client.get(f"{API}/builds")
    assert_json_error(response, 405)
    assert "POST" in response.headers["Allow"]
    assert_json_error(client.delete(f"{API}/components/1"), 405)


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
    assert body["invalid_categories"] == ["cpu"]


def test_unknown_category_key_is_400(client):
    body = assert_json_error(post_build(client, {"components": {"cpu": 1, "monitor": 3}}), 400)
    assert body["unknown_categories"] == ["monitor"]


def test_unknown_ids_are_422_with_the_ids(client):
    body = assert_json_error(
        post_build(client, {"components": {"cpu": 1, "gpu": 999, "ram": -5, "psu": 10**30}}), 422)
    assert sorted(body["unknown_ids"]) == [-5, 999, 10**30]


def test_wrong_category_is_422(client):
    body = assert_json_error(post_build(client, {"components": {"cpu": 9}}), 422)
    assert body["details"][0]["code"] == "wrong_category"
    assert body["details"][0]["category"] == "cpu" and body["details"][0]["id"] == 9
    assert body["unknown_ids"] == []


def test_not_json_content_type_is_415(client):
    response = client.post(f"{API}/builds", data={"cpu": "1"})
    assert_json_error(response, 415)


def test_huge_body_is_413_json(client):
    padding = "x" * (65 * 1024)
    response = post_build(client, {"components": {"cpu": 1}, "padding": padding})
    body = assert_json_error(response, 413)
    assert body["status"] == 413


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
    for raw in ["{", "[]", '{"components": {"cpu": true}}', "[" * 20_000 + "]" * 20_000]:
        assert post_build(client, raw).status_code < 500
    assert log_lines("request.failed") == []
    statuses = {line["status"] for line in log_lines("request.finished")}
    assert statuses == {400}
