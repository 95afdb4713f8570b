"""In-test HTTP receivers (the Loki wire-format stand-in, the alert webhook): an http.server
on 127.0.0.1, a port of its own, each request in a daemon thread."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietHandler(BaseHTTPRequestHandler):
    """No access log on the test's stderr; ``answer`` replies with an empty body."""

    def answer(self, status: int, headers: dict | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def local_server(handler: type[QuietHandler]) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """The server (not yet serving) and the thread that will serve it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    return server, threading.Thread(target=server.serve_forever, daemon=True)
