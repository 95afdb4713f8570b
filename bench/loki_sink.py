#!/usr/bin/env python3
"""A stand-in for Loki during the benchmark: accepts pushes and throws them away.

POST /loki/api/v1/push  -> 204 (the body is read and counted, not stored)
POST /mode              -> body "hang" or "up": switch between a Loki that accepts
                           connections and never answers, and a working one
GET  /stats             -> {"pushes", "bytes", "gzip_pushes", "hung_pushes", ...}

Usage: loki_sink.py PORT [--hang] [--count]   (127.0.0.1:PORT until SIGINT/SIGTERM)
--hang   start as a Loki that never answers (the outage scenario).
--count  also parse each push and count the distinct request ids of the app's
         ``request.finished`` lines received (``finished_ids``) and every entry
         (``entries``): how many lines made it after an outage. Costs CPU in this
         process, so only the outage scenario uses it.
It measures what the app's shipping costs the app, not what a real Loki costs.
"""
from __future__ import annotations

import gzip
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PUSH_PATH = "/loki/api/v1/push"
_stats = {"pushes": 0, "bytes": 0, "gzip_pushes": 0, "hung_pushes": 0, "entries": 0,
          "other_requests": 0}
_finished_ids: set[str] = set()
_lock = threading.Lock()
_up = threading.Event()
COUNT = False


def _count(body: bytes, gzipped: bool) -> None:
    payload = json.loads(gzip.decompress(body) if gzipped else body)
    entries, finished = 0, []
    for stream in payload.get("streams", []):
        for value in stream.get("values", []):
            entries += 1
            if '"event":"request.finished"' in value[1] and len(value) > 2:
                finished.append(value[2].get("request_id"))
    with _lock:
        _stats["entries"] += entries
        _finished_ids.update(finished)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the shipper's requests.Session expects

    def do_POST(self):  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        if path == "/mode":
            (_up.set if body.strip() == b"up" else _up.clear)()
            self._answer(204)
            return
        if path != PUSH_PATH:
            with _lock:
                _stats["other_requests"] += 1
            self._answer(404, b"not found\n")
            return
        if not _up.is_set():
            with _lock:
                _stats["hung_pushes"] += 1
            _up.wait()  # never answer while hanging; then drop the connection unanswered
            self.close_connection = True
            return
        gzipped = (self.headers.get("Content-Encoding") or "").lower() == "gzip"
        with _lock:
            _stats["pushes"] += 1
            _stats["bytes"] += len(body)
            _stats["gzip_pushes"] += gzipped
        if COUNT:
            _count(body, gzipped)
        self._answer(204)

    def do_GET(self):  # noqa: N802
        if self.path == "/stats":
            with _lock:
                body = json.dumps({**_stats, "finished_ids": len(_finished_ids),
                                   "mode": "up" if _up.is_set() else "hang"}).encode()
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
    global COUNT
    flags = argv[2:]
    if len(argv) < 2 or not set(flags) <= {"--hang", "--count"}:
        print(__doc__, file=sys.stderr)
        return 2
    COUNT = "--count" in flags
    if "--hang" not in flags:
        _up.set()
    server = ThreadingHTTPServer(("127.0.0.1", int(argv[1])), Handler)
    server.daemon_threads = True

    def _stop(_signum, _frame):
        _up.set()  # release hanging handlers
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
