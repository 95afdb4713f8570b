#!/usr/bin/env python3
"""Stand-in for Loki's push endpoint in the compose smoke test (not Loki: Loki images
cannot be had here). It stores every pushed entry in memory and shows them to the test.

POST /loki/api/v1/push  JSON (optionally gzip) push body -> 204
GET  /entries           every entry so far: [{"stream": {...}, "line": "..."}, ...]
GET  /ready             200

Installed where the real image has its binary, /usr/bin/loki, and run with compose's own
command line, whose -config.* flags it ignores. ``loki -health [-health.url=URL]`` is
compose's health check, as in the real Loki (3.7): exit 0 when URL (default
http://localhost:3100/ready) answers 200, else 1 with the reason on stderr.
"""
from __future__ import annotations

import gzip
import json
import os
import signal
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PUSH_PATH = "/loki/api/v1/push"
_entries: list[dict] = []
_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the app's requests.Session expects

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.split("?", 1)[0] != PUSH_PATH:
            return self._answer(404, b"not found\n")
        try:
            if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
                body = gzip.decompress(body)
            streams = json.loads(body)["streams"]
            new = [{"stream": s["stream"], "line": v[1]} for s in streams for v in s["values"]]
        except (ValueError, KeyError, TypeError, OSError) as exc:
            return self._answer(400, f"bad push: {exc}\n".encode())
        with _lock:
            _entries.extend(new)
        self._answer(204)

    def do_GET(self):  # noqa: N802
        if self.path == "/entries":
            with _lock:
                body = json.dumps(_entries).encode()
            self._answer(200, body, "application/json")
        elif self.path == "/ready":
            self._answer(200, b"ready\n")
        else:
            self._answer(404, b"not found\n")

    def _answer(self, status: int, body: bytes = b"", ctype: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args):
        pass


def health(args: list[str]) -> int:
    url = next((a.split("=", 1)[1] for a in args if a.lstrip("-").startswith("health.url=")),
               "http://localhost:3100/ready")
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        print(f"Health check failed: {exc}", file=sys.stderr)
        return 1
    if status == 200:
        print("Loki is healthy")
        return 0
    print(f"Loki is unhealthy: status code {status}", file=sys.stderr)
    return 1


def main() -> None:
    if any(a.lstrip("-") == "health" for a in sys.argv[1:]):
        sys.exit(health(sys.argv[1:]))
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "3100"))), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
    main()
