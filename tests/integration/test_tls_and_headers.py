"""HTTPS (Mozilla intermediate, self-signed on first start), security headers, rate limits."""
from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.env import free_port
from tests.support.stack import ROOT, STACK, start_stack, stop_stack
from tests.support.tls import user_pair
from tests.support.tools import require_tool

pytestmark = pytest.mark.integration


def tls_context(version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # self-signed
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def https_get(stack, path: str, headers: dict | None = None):
    req = urllib.request.Request(stack.https_url + path, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10, context=tls_context()) as resp:
        return resp.status, dict(resp.headers), resp.read()


def test_https_serves_the_app_with_hsts_and_security_headers(stack):
    rid = "tls-" + uuid.uuid4().hex
    status, headers, body = https_get(stack, "/pc-builder-app/main", {"X-Request-ID": rid})
    assert status == 200 and headers["X-Request-ID"] == rid
    assert headers["Strict-Transport-Security"].startswith("max-age=")
    csp = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert b"<script>" not in body and b" style=" not in body  # nothing the CSP would block


def test_plain_http_has_the_headers_but_no_hsts(stack):
    for path in ("/pc-builder-app/main", "/pc-builder-app/static/css/app.css", "/pc-builder-app/nope"):
        resp = stack.request(path)
        assert "Strict-Transport-Security" not in resp.headers, path
        assert resp.headers["X-Content-Type-Options"] == "nosniff", path
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"], path


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_1_2_and_1_3_are_accepted(stack, version):
    port = int(stack.env["HTTPS_PORT"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with tls_context(version).wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]


def test_tls_1_1_is_refused(stack):
    port = int(stack.env["HTTPS_PORT"])
    result = subprocess.run([require_tool("openssl"), "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_1"],
                            input="", capture_output=True, text=True, timeout=20)
    assert result.returncode != 0
    assert "Cipher is (NONE)" in result.stdout or "alert" in (result.stdout + result.stderr).lower()


def test_a_self_signed_certificate_was_generated_for_localhost(stack):
    cert = stack.base / "data" / "tls" / "cert.pem"
    text = subprocess.run([require_tool("openssl"), "x509", "-in", str(cert), "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    assert "DNS:localhost" in text and "IP Address:127.0.0.1" in text
    assert oct((stack.base / "data" / "tls" / "key.pem").stat().st_mode & 0o777) == "0o600"


def test_api_rate_limit_answers_429_with_json_and_logs_it(stack):
    def hit(i):
        return stack.request("/pc-builder-app/api/components/1", headers={"X-Request-ID": f"rate-{i:05d}-x"})

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(hit, range(300)))
    limited = [r for r in responses if r.status == 429]
    assert limited, "300 quick API requests from one address never hit the limit"
    assert all(r.status in (200, 429) for r in responses)
    body = json.loads(limited[0].body)
    assert body["error"] and body["request_id"] == limited[0].headers["X-Request-ID"]
    assert limited[0].headers["Content-Type"] == "application/json"
    logged = stack.wait_for(lambda: [r for r in stack.records("nginx") if r["status"] == 429], what="429 lines")
    assert all(r["upstream_addr"] == "" for r in logged)


def test_https_redirect_when_asked(tmp_path):
    redirecting = start_stack(tmp_path, HTTPS_REDIRECT="on")
    try:
        conn = socket.create_connection(("127.0.0.1", redirecting.port), timeout=5)
        conn.sendall(b"GET /pc-builder-app/main?x=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        head = conn.recv(4096).decode()
        conn.close()
        assert head.startswith("HTTP/1.1 308")
        assert f"Location: https://localhost:{redirecting.env['HTTPS_PORT']}/pc-builder-app/main?x=1" in head
        status, headers, _ = https_get(redirecting, "/pc-builder-app/main")
        assert status == 200 and "Strict-Transport-Security" in headers
    finally:
        stop_stack(redirecting)


def test_up_never_writes_over_a_users_certificate_it_cannot_pair(tmp_path):
    """TLS_CERT set to the user's certificate, TLS_KEY left at its default: up used
    to generate a pair over both; now it refuses with one line and writes nothing."""
    cert, _ = user_pair(tmp_path / "mine", cn="mine.example")
    before = cert.read_bytes()
    env = {**os.environ, "HTTP_PORT": str(free_port()), "HTTPS_PORT": str(free_port()),
           "LOG_DIR": str(tmp_path / "log"), "DATA_DIR": str(tmp_path / "data"),
           "RUN_DIR": str(tmp_path / "run"), "TLS_CERT": str(cert)}
    result = subprocess.run([str(STACK), "up", "-d"], env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    key = tmp_path / "data" / "tls" / "key.pem"
    assert result.stderr.strip().splitlines() == [
        f"stack: TLS_KEY={key} does not exist but TLS_CERT={cert} does: give both files, or neither"
        " for a self-signed pair; nothing was written"]
    assert cert.read_bytes() == before and not key.exists()


def test_a_users_pair_is_served_as_it_is(tmp_path):
    cert, key = user_pair(tmp_path / "mine", cn="mine.example")
    before = (cert.read_bytes(), key.read_bytes())
    running = start_stack(tmp_path / "s", TLS_CERT=str(cert), TLS_KEY=str(key))
    try:
        assert "generated" not in running.start_output
        served = ssl.get_server_certificate(("127.0.0.1", int(running.env["HTTPS_PORT"])))
        assert ssl.PEM_cert_to_DER_cert(served) == ssl.PEM_cert_to_DER_cert(cert.read_text())
        assert https_get(running, "/pc-builder-app/main")[0] == 200
    finally:
        stop_stack(running)
    assert (cert.read_bytes(), key.read_bytes()) == before
    assert not (tmp_path / "s" / "data" / "tls").exists()
