"""Errors NGINX answers itself: JSON in the API's error shape under the API
prefix, an HTML page with the request id elsewhere; redirects never built from the
client's Host; the HTTPS redirect only to the site's own names (SERVER_NAME).
"""
from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from tests.support.raw_http import BODY_MAX, LINE, final_status, req, send_raw
from tests.support.stack import start_stack, stop_stack

pytestmark = pytest.mark.integration

API_ERROR_KEYS = {"error", "detail", "request_id"}


def split(response: bytes) -> tuple[int, dict, bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return final_status(response), headers, body


def rid() -> bytes:
    return b"edge-" + uuid.uuid4().hex.encode()


def get(target: bytes, *headers: bytes) -> bytes:
    return req(b"GET " + target + b" HTTP/1.1", *headers)


API_ERRORS = [  # (name, raw request, status NGINX answers)
    ("invalid-utf8-uri", lambda i: get(b"/pc-builder-app/api/components?q=\xff", b"X-Request-ID: " + i), 400),
    ("duplicate-content-length", lambda i: req(b"POST /pc-builder-app/api/builds HTTP/1.1", b"X-Request-ID: " + i,
                                               b"Content-Length: 2", b"Content-Length: 2", body=b"{}"), 400),
    ("api-root-without-slash", lambda i: get(b"/pc-builder-app/api", b"X-Request-ID: " + i), 404),
    ("trace-method", lambda i: req(b"TRACE /pc-builder-app/api/components HTTP/1.1", b"X-Request-ID: " + i), 405),
    ("body-too-large", lambda i: req(b"POST /pc-builder-app/api/builds HTTP/1.1", b"X-Request-ID: " + i,
                                     b"Content-Type: application/json", b"Content-Length: %d" % (BODY_MAX + 6000),
                                     body=b"x" * (BODY_MAX + 6000)), 413),
    ("uri-too-long", lambda i: get(b"/pc-builder-app/api/components?q=" + b"a" * 20000), 414),
    ("header-too-large", lambda i: get(b"/pc-builder-app/api/components", b"X-Request-ID: " + i,
                                       b"X-Big: " + b"b" * (LINE + 10)), 431),
    ("transfer-encoding-unknown", lambda i: req(b"POST /pc-builder-app/api/builds HTTP/1.1", b"X-Request-ID: " + i,
                                                b"Transfer-Encoding: gzip"), 501),
    ("absolute-form-uri-too-long", lambda i: get(b"http://x.example/pc-builder-app/api/x?q=" + b"a" * 20000), 414),
]


@pytest.mark.parametrize("name,make,status", API_ERRORS, ids=[e[0] for e in API_ERRORS])
def test_errors_nginx_answers_under_the_api_prefix_are_json_with_the_request_id(stack, name, make, status):
    sent_id = rid()
    got, headers, body = split(send_raw(stack.port, make(sent_id)))
    assert got == status
    assert headers["content-type"] == "application/json"
    payload = json.loads(body)
    assert set(payload) == API_ERROR_KEYS, payload
    assert payload["error"] and payload["detail"]
    assert payload["request_id"] == headers["x-request-id"]
    if status not in (414,):  # a 414's headers are never read: NGINX uses its own id
        assert payload["request_id"] == sent_id.decode()


def test_a_rate_limited_api_request_gets_the_same_json_shape(stack):
    beacon = b'{"request_id":"x"}'
    answers = [split(send_raw(stack.port, req(b"POST /pc-builder-app/api/timing HTTP/1.1",
                                              b"Content-Type: application/json",
                                              b"Content-Length: %d" % len(beacon), body=beacon)))
               for _ in range(40)]
    limited = [a for a in answers if a[0] == 429]
    assert limited, [a[0] for a in answers]
    _, headers, body = limited[0]
    assert headers["content-type"] == "application/json"
    payload = json.loads(body)
    assert set(payload) == API_ERROR_KEYS and payload["request_id"] == headers["x-request-id"]


HTML_ERRORS = [
    ("not-found", get(b"/nope"), 404),
    ("invalid-utf8-uri", get(b"/pc-builder-app/main?\xff"), 400),
    ("uri-too-long", get(b"/pc-builder-app/table?q=" + b"a" * 20000), 414),
    ("header-too-large", get(b"/pc-builder-app/main", b"X-Big: " + b"b" * (LINE + 10)), 431),
    ("post-to-a-static-file", req(b"POST /pc-builder-app/static/css/app.css HTTP/1.1", b"Content-Length: 0"), 405),
    ("http-1.1-without-host", b"GET /pc-builder-app/main HTTP/1.1\r\nConnection: close\r\n\r\n", 400),
]


@pytest.mark.parametrize("name,raw,status", HTML_ERRORS, ids=[e[0] for e in HTML_ERRORS])
def test_errors_nginx_answers_elsewhere_are_html_pages_with_the_request_id(stack, name, raw, status):
    got, headers, body = split(send_raw(stack.port, raw))
    assert got == status
    assert headers["content-type"].startswith("text/html")
    assert f"<code>{headers['x-request-id']}</code>".encode() in body
    assert b"<title>%d " % status in body


def test_an_error_page_keeps_the_method_the_client_sent_in_the_log(stack):
    sent_id = rid()
    send_raw(stack.port, req(b"POST /pc-builder-app/api/builds HTTP/1.1", b"X-Request-ID: " + sent_id,
                            b"Content-Length: %d" % (BODY_MAX + 1), body=b"x" * (BODY_MAX + 1)))
    line = stack.wait_for(lambda: [r for r in stack.records("nginx") if r["request_id"] == sent_id.decode()],
                         what="nginx line")[0]
    assert (line["method"], line["status"], line["upstream_addr"]) == ("POST", 413, "")


@pytest.mark.parametrize("target,location", [(b"/", b"/pc-builder-app/main"),
                                             (b"/pc-builder-app", b"/pc-builder-app/")])
def test_nginx_redirects_never_name_the_clients_host(stack, target, location):
    raw = req(b"GET " + target + b" HTTP/1.1", b"Host: evil.example", host=False)
    status, headers, _ = split(send_raw(stack.port, raw))
    assert status in (301, 302) and headers["location"] == location.decode()


def _supervisorctl(stack, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "supervisor.supervisorctl", "-c",
                    str(stack.run_dir / "supervisord.conf"), *args], check=False, capture_output=True,
                   timeout=60)


def test_with_no_instance_answering_the_api_gets_json_502_and_pages_html(stack):
    """Runs last in this module: stops every uWSGI instance, then starts them again."""
    _supervisorctl(stack, "stop", *(f"app{i}" for i in (1, 2)))
    try:
        status, headers, body = split(send_raw(stack.port, get(b"/pc-builder-app/api/components/1")))
        assert status == 502 and headers["content-type"] == "application/json"
        assert json.loads(body)["request_id"] == headers["x-request-id"]
        status, headers, body = split(send_raw(stack.port, get(b"/pc-builder-app/main")))
        assert status == 502 and headers["content-type"].startswith("text/html")
        assert headers["x-request-id"].encode() in body
    finally:
        _supervisorctl(stack, "start", *(f"app{i}" for i in (1, 2)))
    stack.wait_for(lambda: stack.request("/pc-builder-app/readyz").status == 200, timeout=30, what="ready again")


def test_https_redirect_goes_only_to_the_configured_server_names(tmp_path):
    stack = start_stack(tmp_path, HTTPS_REDIRECT="on", SERVER_NAME="shop.example localhost")
    https_port = stack.env["HTTPS_PORT"]
    try:
        def ask(host: bytes, target: bytes = b"/pc-builder-app/main?x=1", source: str = "127.0.0.2"):
            raw = req(b"GET " + target + b" HTTP/1.1", b"Host: " + host, host=False)
            return split(send_raw(stack.port, raw, source))

        for host, name in ((b"shop.example", "shop.example"), (b"SHOP.example:%d" % stack.port, "shop.example"),
                           (b"localhost", "localhost")):
            status, headers, _ = ask(host)
            assert status == 308
            assert headers["location"] == f"https://{name}:{https_port}/pc-builder-app/main?x=1"
        for host in (b"evil.example", b"evil.example:443", b"127.0.0.1", b"shop.example.evil.example",
                     b"[::1]"):
            status, headers, body = ask(host)
            assert status == 400 and "location" not in headers, host
            assert b"SERVER_NAME" in body and headers["x-request-id"].encode() in body
        status, headers, body = ask(b"evil.example", b"/pc-builder-app/api/components")
        assert status == 400 and json.loads(body)["request_id"] == headers["x-request-id"]
        # the machine's own probes (compose healthcheck) answer over plain HTTP
        assert ask(b"127.0.0.1", b"/pc-builder-app/readyz", source="127.0.0.1")[0] == 200
        assert ask(b"localhost", b"/pc-builder-app/readyz")[0] == 308  # from elsewhere
    finally:
        stop_stack(stack)
