"""POST /pc-builder-app/api/timing: the browser's timing beacon (navigations and the page's
own fetches, one or a batch) is validated strictly."""
from __future__ import annotations

import json

import pytest

from pcbuilder import create_app
from pcbuilder.views.timing import MAX_BYTES, MAX_TIMINGS

URL = "/pc-builder-app/api/timing"
PAGE_ID = "page-0123456789abcdef"


@pytest.fixture
def app(tmp_path):
    return create_app({
        "TESTING": True,
        "DATABASE": str(tmp_path / "data" / "pcbuilder.sqlite3"),
        "APP_LOG_FILE": str(tmp_path / "app" / "test.log"),
        "BROWSER_LOG_FILE": str(tmp_path / "browser" / "test.log"),
        "INSTANCE_NAME": "test",
    })


def read(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def browser_lines(tmp_path):
    return lambda: read(tmp_path / "browser" / "test.log")


@pytest.fixture
def app_lines(tmp_path):
    return lambda: read(tmp_path / "app" / "test.log")


def beacon(**overrides):
    body = {"request_id": PAGE_ID, "page": "/pc-builder-app/table", "timeOrigin": 1732484426123.4,
            "requestStart": 3.1, "responseStart": 9.8, "responseEnd": 10.2,
            "domContentLoadedEventEnd": 40.5, "loadEventEnd": 61.0}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


FETCH_ID = "fetch-0123456789abcdef"


def fetch_timing(**overrides):
    body = {"kind": "fetch", "request_id": FETCH_ID, "page": "/pc-builder-app/api/builds",
            "timeOrigin": 1732484426123.4, "requestStart": 5021.3, "responseStart": 5030.0,
            "responseEnd": 5030.4}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def post(client, body, content_type="text/plain;charset=UTF-8", **headers):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(URL, data=data, headers={"Content-Type": content_type, **headers})


@pytest.mark.parametrize("content_type", ["text/plain;charset=UTF-8", "application/json"])
def test_good_beacon_is_one_browser_line_with_the_page_id(client, browser_lines, app_lines, content_type):
    resp = post(client, beacon(), content_type, **{"X-Request-ID": "ignored-without-nginx"})
    assert resp.status_code == 204 and resp.data == b""
    lines = browser_lines()
    assert len(lines) == 1
    line = lines[0]
    assert line["event"] == "browser.timing" and line["layer"] == "browser"
    assert line["instance"] == "test"
    assert line["request_id"] == PAGE_ID
    beacon_id = resp.headers["X-Request-ID"]
    assert line["beacon_request_id"] == beacon_id != PAGE_ID
    assert line["page"] == "/pc-builder-app/table"
    assert line["timeOrigin"] == 1732484426123.4 and line["responseEnd"] == 10.2
    assert line["loadEventEnd"] == 61.0
    assert line["kind"] == "navigation"  # the default, for a script that does not say
    # The app's own stream keeps layer "app" and has no browser line.
    app_events = app_lines()
    assert all(r["layer"] == "app" for r in app_events)
    assert not [r for r in app_events if r["event"] == "browser.timing"]
    finished = [r for r in app_events if r["event"] == "request.finished"]
    assert finished[-1]["request_id"] == beacon_id and finished[-1]["status"] == 204


def test_optional_fields_and_zero_meaning_not_yet(client, browser_lines):
    resp = post(client, beacon(page=..., domContentLoadedEventEnd=..., loadEventEnd=0))
    assert resp.status_code == 204
    assert "page" not in browser_lines()[0]


def test_a_fetch_timing_is_a_browser_line_under_the_fetchs_id(client, browser_lines):
    resp = post(client, fetch_timing())
    assert resp.status_code == 204
    (line,) = browser_lines()
    assert line["event"] == "browser.timing" and line["kind"] == "fetch"
    assert line["request_id"] == FETCH_ID and line["page"] == "/pc-builder-app/api/builds"
    assert (line["timeOrigin"], line["requestStart"], line["responseStart"], line["responseEnd"]) == (
        1732484426123.4, 5021.3, 5030.0, 5030.4)
    assert "domContentLoadedEventEnd" not in line and "loadEventEnd" not in line
    assert line["beacon_request_id"] == resp.headers["X-Request-ID"]


def test_a_fetch_may_come_long_after_the_page_loaded(client, browser_lines):
    late = 5 * 3_600_000.0  # five hours after timeOrigin: fine for a fetch, not a navigation
    assert post(client, fetch_timing(requestStart=late, responseStart=late + 1,
                                     responseEnd=late + 2)).status_code == 204
    assert post(client, beacon(loadEventEnd=late)).status_code == 400


def test_a_batch_is_one_line_per_timing_in_its_order(client, browser_lines, app_lines):
    batch = [beacon(kind="navigation")] + [fetch_timing(request_id=f"fetch-{i:016d}") for i in range(3)]
    resp = post(client, {"timings": batch})
    assert resp.status_code == 204
    lines = browser_lines()
    assert [(r["kind"], r["request_id"]) for r in lines] == [
        ("navigation", PAGE_ID)] + [("fetch", f"fetch-{i:016d}") for i in range(3)]
    assert {r["beacon_request_id"] for r in lines} == {resp.headers["X-Request-ID"]}
    finished = [r for r in app_lines() if r["event"] == "request.finished"]
    assert len(finished) == 1 and finished[0]["status"] == 204


def test_the_largest_batch_app_js_sends_fits_the_cap(client, browser_lines):
    """app.js packs at most MAX_TIMINGS and MAX_BYTES into a beacon; fetch timings of the
    size it sends (32-hex ids, times rounded to the microsecond) fill the count first."""
    batch = [fetch_timing(request_id="%032x" % (2**127 + i), timeOrigin=1764680000123.457,
                          requestStart=86399123.457, responseStart=86399130.001,
                          responseEnd=86399131.999) for i in range(MAX_TIMINGS)]
    body = json.dumps({"timings": batch}, separators=(",", ":"))
    assert len(body) <= MAX_BYTES
    assert post(client, body).status_code == 204
    assert len(browser_lines()) == MAX_TIMINGS


def test_binary_noise_past_the_microsecond_is_not_logged(client, tmp_path):
    """Chromium sends its coarsened timestamps with float noise (17.200000001117587); the line
    carries them to the microsecond, as written in the file."""
    resp = post(client, beacon(requestStart=17.200000001117587, responseStart=342.80000000074506,
                               responseEnd=347.0, domContentLoadedEventEnd=910.2000000011176,
                               loadEventEnd=912.5, timeOrigin=1796220974871.7))
    assert resp.status_code == 204
    text = (tmp_path / "browser" / "test.log").read_text()
    for written in ('"requestStart":17.2,', '"responseStart":342.8,', '"responseEnd":347.0,',
                    '"domContentLoadedEventEnd":910.2,', '"timeOrigin":1796220974871.7,'):
        assert written in text, text

BAD = {
    "not json": b"{nope",
    "not an object": b"[1, 2]",
    "not utf-8": b'{"request_id": "\xff\xfe"}',
    "unknown field": beacon(extra=1),
    "missing responseEnd": beacon(responseEnd=...),
    "missing request_id": beacon(request_id=...),
    "short id": beacon(request_id="short"),
    "id with space": beacon(request_id="has space in it"),
    "forged id": beacon(request_id='x"}{"forged":1'),
    "id too long": beacon(request_id="a" * 129),
    "id not a string": beacon(request_id=12345678),
    "string number": beacon(requestStart="3.1"),
    "bool number": beacon(requestStart=True),
    "null number": beacon(responseStart=None),
    "NaN": b'{"request_id": "page-0123456789", "timeOrigin": NaN, "requestStart": 1,'
           b' "responseStart": 2, "responseEnd": 3}',
    "Infinity": b'{"request_id": "page-0123456789", "timeOrigin": 1732484426123, "requestStart": 1,'
                b' "responseStart": 2, "responseEnd": Infinity}',
    "huge exponent": b'{"request_id": "page-0123456789", "timeOrigin": 1e999, "requestStart": 1,'
                     b' "responseStart": 2, "responseEnd": 3}',
    "negative offset": beacon(requestStart=-1),
    "offset over an hour": beacon(loadEventEnd=3_600_001),
    "timeOrigin in 1970": beacon(timeOrigin=5),
    "timeOrigin in 2200": beacon(timeOrigin=7.3e12),
    "out of order": beacon(responseStart=2.0),
    "load before response end": beacon(loadEventEnd=5.0),
    "page not a path": beacon(page="https://evil.example/"),
    "page with control chars": beacon(page="/a\nb"),
    "page too long": beacon(page="/" + "a" * 300),
    "page not a string": beacon(page=["/"]),
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "unknown kind": beacon(kind="resource"),
    "kind not a string": beacon(kind=["fetch"]),
    "fetch with DOM times": fetch_timing(loadEventEnd=6000.0),
    "fetch without page": fetch_timing(page=...),
    "fetch out of order": fetch_timing(responseStart=5000.0),
    "fetch offset over a day": fetch_timing(responseEnd=86_400_001),
    "empty batch": {"timings": []},
    "batch too long": {"timings": [fetch_timing(request_id=f"fetch-{i:08d}") for i in range(MAX_TIMINGS + 1)]},
    "batch not a list": {"timings": fetch_timing()},
    "batch with other fields": {"timings": [fetch_timing()], "request_id": PAGE_ID},
    "batch of non-objects": {"timings": [1]},
    "batch with one bad timing": {"timings": [fetch_timing(), beacon(requestStart="3.1")]},
    "nested batch": {"timings": [{"timings": [fetch_timing()]}]},
    "batch timing an id twice": {"timings": [beacon(), fetch_timing(request_id=PAGE_ID)]},
}


@pytest.mark.parametrize("body", BAD.values(), ids=BAD.keys())
def test_bad_beacon_is_400_and_logged_safely(client, browser_lines, app_lines, body):
    resp = post(client, body)
    assert resp.status_code == 400
    assert resp.is_json and "error" in resp.get_json()
    assert browser_lines() == []
    rejected = [r for r in app_lines() if r["event"] == "browser.timing.rejected"]
    assert len(rejected) == 1 and rejected[0]["level"] == "WARNING"
    assert "forged" not in json.dumps(app_lines())


def test_oversized_body_is_refused_without_reading_it(client, browser_lines):
    resp = post(client, json.dumps(beacon(page="/" + "a" * 250)) + " " * MAX_BYTES)
    assert resp.status_code == 400 and str(MAX_BYTES) in resp.get_json()["error"]
    assert browser_lines() == []


def test_body_without_content_length_is_cut_at_the_cap_and_refused(client, browser_lines):
    import io

    body = b'{"request_id": "page-0123456789", "page": "/' + b"a" * 3000 + b'"}'
    resp = client.post(URL, input_stream=io.BytesIO(body), headers={"Content-Type": "text/plain"})
    assert resp.status_code == 400 and str(MAX_BYTES) in resp.get_json()["error"]
    assert browser_lines() == []


def test_a_bad_timing_in_a_batch_is_named_by_its_place(client):
    resp = post(client, {"timings": [fetch_timing(), fetch_timing(request_id="x")]})
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "timings[1]: request_id is malformed"


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                          "image/png", ""])
def test_other_content_types_are_refused(client, content_type):
    assert post(client, beacon(), content_type).status_code == 400


def test_only_post(client):
    assert client.get(URL).status_code == 405


def test_without_log_dir_the_browser_line_goes_to_stdout(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("LOG_DIR", raising=False)
    app = create_app({"TESTING": True, "DATABASE": str(tmp_path / "db.sqlite3"), "INSTANCE_NAME": "t"})
    resp = post(app.test_client(), beacon())
    assert resp.status_code == 204
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"browser.timing"' in line]
    assert out and out[0]["layer"] == "browser" and out[0]["request_id"] == PAGE_ID
