"""A wire-format stand-in for Loki's push API: an http.server in a thread on 127.0.0.1.

It is not Loki. It records what is POSTed to /loki/api/v1/push (labels, nanosecond
timestamps, structured metadata), answers with scripted statuses, or accepts and never
answers ("hang"). Only the wire-format tests (what the app *sends*) use it; delivery,
outages, queries and alerts are proven against the real Loki (tests/support/real.py).
"""
from __future__ import annotations

import gzip
import json
import threading
import time

from tests.support.local_http import QuietHandler, local_server
from tests.support.waiting import wait_until

PUSH_PATH = "/loki/api/v1/push"


class FakeLoki:
    """Records pushes. ``script`` is a list of (status, headers) answered to the first POSTs in
    turn (then 204); ``hang`` reads a request and never answers until released."""

    def __init__(self, mode: str = "ok", script: list | None = None):
        self.mode = mode
        self.script = list(script or [])
        self.pushes: list[dict] = []
        self.post_times: list[float] = []
        self.release = threading.Event()
        self.lock = threading.Lock()
        fake = self

        class Handler(QuietHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with fake.lock:
                    fake.post_times.append(time.monotonic())
                    status, headers = fake.script.pop(0) if fake.script else (204, {})
                if fake.mode == "hang" and not fake.release.is_set():
                    fake.release.wait()
                    return
                if status == 204:
                    if self.headers.get("Content-Encoding") == "gzip":
                        body = gzip.decompress(body)
                    with fake.lock:
                        fake.pushes.append({"path": self.path, "headers": dict(self.headers),
                                            "body": json.loads(body)})
                self.answer(status, headers)

        self.server, self.thread = local_server(Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{PUSH_PATH}"

    @property
    def posts(self) -> int:
        with self.lock:
            return len(self.post_times)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def entries(self) -> list[tuple[dict, list]]:
        """(stream labels, value) for every entry received so far."""
        with self.lock:
            pushes = list(self.pushes)
        return [(s["stream"], v) for p in pushes for s in p["body"]["streams"] for v in s["values"]]

    def lines(self) -> list[dict]:
        return [json.loads(v[1]) for _, v in self.entries()]

    def wait_for(self, predicate, timeout: float = 10.0):
        return wait_until(predicate, timeout, "the fake Loki")
