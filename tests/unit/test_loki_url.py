"""LOKI_URL in both forms: Loki's base URL and its push URL.

The push tests use ``FakeLoki``, an in-test HTTP server that records what arrives at
``/loki/api/v1/push``: wire format only, not Loki. The real Loki given as a base URL
receives every layer's lines in tests/real/test_delivery.py.
"""
from __future__ import annotations

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import threading

import pytest

from pcbuilder import create_app, loki_url
from stackctl import loki
from tests.support.env import free_port
from tests.support.fake_loki import PUSH_PATH, FakeLoki

pytestmark = pytest.mark.usefixtures("no_loki_env")


@pytest.mark.parametrize("given, push, base", [
    ("http://loki:3100", "http://loki:3100/loki/api/v1/push", "http://loki:3100"),
    ("http://loki:3100/", "http://loki:3100/loki/api/v1/push", "http://loki:3100"),
    ("http://loki:3100/loki/api/v1/push", "http://loki:3100/loki/api/v1/push", "http://loki:3100"),
    ("http://loki:3100/loki/api/v1/push/", "http://loki:3100/loki/api/v1/push", "http://loki:3100"),
    (" https://logs.example/prefix ", "https://logs.example/prefix/loki/api/v1/push",
     "https://logs.example/prefix"),
    ("https://u:t@logs.example/loki/api/v1/push", "https://u:t@logs.example/loki/api/v1/push",
     "https://u:t@logs.example"),
    ("", "", ""),
])
def test_both_forms_normalise_to_one_push_url_and_one_query_base(given, push, base):
    assert loki_url.push_url(given) == push
    assert loki_url.query_base(given) == base
    assert loki_url.problem(given) is None


@pytest.mark.parametrize("given, why", [
    ("not-a-url", "is not an http:// or https:// URL"),
    ("loki:3100", "is not an http:// or https:// URL"),
    ("ftp://loki:3100", "is not an http:// or https:// URL"),
    ("http://loki:99999", "has a port that is not a number"),
    ("http://loki:3100/loki/api/v1/query_range", "another Loki API path"),
    ("http://loki:3100/loki/api/v1/push?x=1", "?query or #fragment"),
])
def test_what_is_neither_form_is_named(given, why):
    assert why in loki_url.problem(given)
    assert "base URL (http://HOST:3100) or its push URL" in loki_url.problem(given)


def test_a_password_never_appears_in_messages():
    assert loki_url.redacted("https://user:s3cret@logs.example/x") == "https://user:***@logs.example/x"
    assert loki_url.redacted("http://loki:3100") == "http://loki:3100"
    assert "s3cret" not in loki.where("https://user:s3cret@logs.example/loki/api/v1/push")


@pytest.mark.parametrize("form", ["base", "push"])
def test_the_app_delivers_lines_with_either_form(tmp_path, monkeypatch, form):
    for name, value in {"LOKI_BATCH_INTERVAL": "0.05", "LOKI_TIMEOUT": "2"}.items():
        monkeypatch.setenv(name, value)
    with FakeLoki() as fake:
        base = f"http://127.0.0.1:{fake.server.server_port}"
        url = base if form == "base" else base + PUSH_PATH
        app = create_app({"TESTING": True, "DATABASE": str(tmp_path / "db.sqlite3"),
                          "APP_LOG_FILE": str(tmp_path / "app.log"), "INSTANCE_NAME": "unit1",
                          "LOKI_URL": url})
        assert app.test_client().get("/pc-builder-app/healthz").status_code == 200
        lines = fake.wait_for(lambda: [line for line in fake.lines() if line.get("path") ==
                                       "/pc-builder-app/healthz"])
        assert lines and {p["path"] for p in fake.pushes} == {PUSH_PATH}


class _Ready(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):
        body = b"ready\n" if self.status == 200 else b"Ingester not ready: waiting for 15s\n"
        self.send_response(self.status if self.path == "/ready" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def ready_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("suffix", ["", PUSH_PATH])
def test_readiness_asks_ready_under_the_base_of_either_form(ready_server, monkeypatch, suffix):
    base = f"http://127.0.0.1:{ready_server.server_port}"
    assert loki.readiness(base + suffix) == (True, f"Loki at {base} is ready")
    monkeypatch.setattr(_Ready, "status", 503)
    ok, line = loki.readiness(base + suffix)
    assert not ok and line == f"Loki at {base} answered 503 to /ready (Ingester not ready: waiting for 15s)"


def test_readiness_of_an_unreachable_loki_is_one_short_line():
    url = f"http://127.0.0.1:{free_port()}"
    assert loki.readiness(url) == (False, f"Loki at {url} is unreachable (connection refused)")
    ok, line = loki.readiness("http://no-such-host.invalid:3100")
    assert not ok and line == ("Loki at http://no-such-host.invalid:3100 is unreachable"
                               " (its host name does not resolve)")
