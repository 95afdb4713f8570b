#!/usr/bin/env python3
"""A stand-in for Loki during the benchmark: accepts pushes and throws them away.

POST /loki/api/v1/push  -> 204 (the body is read and counted, not parsed or stored)
GET  /stats             -> {"pushes": N, "bytes": N, "gzip_pushes": N}

Usage: loki_sink.py PORT [--hang]   (listens on 127.0.0.1:PORT until SIGINT/SIGTERM)
--hang: a Loki that accepts pushes and never answers (the outage scenario).
It measures what the app's shipping costs the app, not what a real Loki costs.
"""
from __future__ import annotations

import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PUSH_PATH = "/loki/api/v1/push"
_stats = {"pushes": 0, "bytes": 0, "gzip_pushes": 0, "other_requests": 0}
_lock = threading.Lock()
HANG = "--hang" in sys.argv[2:]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the shipper's requests.Session expects

    def do_POST(self):  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.split("?", 1)[0] != PUSH_PATH:
            with _lock:
                _stats["other_requests"] += 1
            self._answer(404, b"not found\n")
            return
        with _lock:
            _stats["pushes"] += 1
            _stats["bytes"] += len(body)
            if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
                _stats["gzip_pushes"] += 1
        if HANG:
            threading.Event().wait()  # never answer; the client's timeout must cope
        self._answer(204)

    def do_GET(self):  # noqa: N802
        if self.path == "/stats":
            with _lock:
                body = json.dumps(_stats).encode()
            self._answer(200, body, "application/json")
        elif self.path == "/ready":
            self._answer(200, b"ready\n")
        else:
            self._answer(404, b"not found\n")

    def _answer(self, status: int, body: bytes = b"", ctype: str = "text/plain"):
        self.send_response(status)
        if status != 204:
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def log_message(self, *_args):  # quiet: the benchmark's terminal is for progress
        pass


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or argv[2:] not in ([], ["--hang"]):
        print(__doc__, file=sys.stderr)
        return 2
    server = ThreadingHTTPServer(("127.0.0.1", int(argv[1])), Handler)
    server.daemon_threads = True

    def _stop(_signum, _frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
