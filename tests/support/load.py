"""A steady request load on a running stack: every request with an id of its own.

Threads send GETs one after another until stopped (or ``max_requests`` in all), so a test
can keep traffic flowing while it rotates files or takes Loki away, then check that every
id it sent is where it should be. ``sent`` lists the ids in sending order; ``failures``
whatever did not come back 200.
"""
from __future__ import annotations

import threading
import urllib.request


class Load:
    def __init__(self, stack, prefix: str, threads: int = 4, max_requests: int | None = None,
                 path: str = "/pc-builder-app/main", pause_s: float = 0.0):
        self.url, self.prefix, self.path, self.pause_s = stack.url, prefix, path, pause_s
        self.per_thread = None if max_requests is None else max_requests // threads
        self.sent: list[str] = []
        self.failures: list = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def __enter__(self) -> "Load":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def wait(self) -> list[str]:
        """Wait until every thread has sent its share of ``max_requests``."""
        for t in self._threads:
            t.join()
        return self.sent

    def stop(self) -> list[str]:
        """Stop, wait for the requests in flight, and return the ids sent."""
        self._stop.set()
        for t in self._threads:
            t.join()
        return self.sent

    def _run(self, worker: int) -> None:
        n = 0
        while not self._stop.is_set() and (self.per_thread is None or n < self.per_thread):
            rid = f"{self.prefix}-{worker}-{n:05d}"
            n += 1
            self.sent.append(rid)
            req = urllib.request.Request(self.url + self.path, headers={"X-Request-ID": rid})
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    resp.read()
                    if resp.status != 200:
                        self.failures.append((rid, resp.status))
            except OSError as exc:  # HTTPError included
                self.failures.append((rid, repr(exc)))
            if self.pause_s:
                self._stop.wait(self.pause_s)
