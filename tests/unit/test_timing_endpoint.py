"""POST /pc-builder-app/api/timing: the Navigation Timing beacon is validated strictly."""
from __future__ import annotations

import json

import pytest

from pcbuilder import create_app

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
    resp = post(client, json.dumps(beacon(page="/" + "a" * 250)) + " " * 2048)
    assert resp.status_code == 400 and "2048" in resp.get_json()["error"]
    assert browser_lines() == []


def test_body_without_content_length_is_cut_at_the_cap_and_refused(client, browser_lines):
    import io

    body = b'{"request_id": "page-0123456789", "page": "/' + b"a" * 3000 + b'"}'
    resp = client.post(URL, input_stream=io.BytesIO(body), headers={"Content-Type": "text/plain"})
    assert resp.status_code == 400 and "2048" in resp.get_json()["error"]
    assert browser_lines() == []


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
