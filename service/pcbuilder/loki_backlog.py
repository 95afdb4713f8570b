"""What waits for Loki: rendered lines, bounded in bytes, with counters.

A request thread appends one entry (timestamp, the line as rendered, its structured
metadata, its size) under a lock: no thread is woken, nothing blocks. The sender takes
batches from the front and, when a push fails in a way worth retrying, puts the batch
back in front, so the order of the lines is kept.

The bound (``LOKI_BACKLOG_BYTES``) covers everything the process holds for Loki: queued
lines and the batch being pushed. Rule when it is full: **the oldest lines are dropped**
(and counted as ``overflow``), so that after an outage Loki gets the most recent lines,
the ones an operator is looking for; the local file has them all anyway.
"""
from __future__ import annotations

import threading
from collections import deque

#: Bytes an entry costs beyond its characters (the tuple, the str and int headers, the
#: metadata dict and its values' headers): ``sys.getsizeof`` of a typical entry says
#: 539, rounded up.
ENTRY_OVERHEAD = 560


def entry_size(line: str, metadata: dict) -> int:
    return len(line) + sum(map(len, metadata)) + sum(map(len, metadata.values())) + ENTRY_OVERHEAD


class Counters:
    """Counts by reason, for the reports (``loki.report``) and the tests."""

    def __init__(self):
        self.sent_lines = 0
        self.dropped: dict[str, int] = {}  # lines given up: overflow, rejected, shutdown
        self.failed: dict[str, int] = {}   # pushes that failed and will be retried
        self.last_error = ""

    def drop(self, reason: str, lines: int) -> None:
        if lines:
            self.dropped[reason] = self.dropped.get(reason, 0) + lines

    def fail(self, reason: str, error: str) -> None:
        self.failed[reason] = self.failed.get(reason, 0) + 1
        self.last_error = error[:500]

    def snapshot(self) -> dict:
        return {"sent_lines": self.sent_lines, "dropped": dict(self.dropped),
                "failed": dict(self.failed), "last_error": self.last_error}


class Backlog:
    """Entries ``(ts_ns, line, metadata, size)`` waiting to be pushed, at most ``max_bytes``."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.entries: deque = deque()
        self.bytes = 0  # queued + in flight
        self.counters = Counters()
        self.lock = threading.Lock()

    def append(self, ts_ns: int, line: str, metadata: dict) -> None:
        size = entry_size(line, metadata)
        with self.lock:
            self.entries.append((ts_ns, line, metadata, size))
            self.bytes += size
            if self.bytes > self.max_bytes:
                self._drop_oldest()

    def _drop_oldest(self) -> None:
        dropped = 0
        while self.bytes > self.max_bytes and self.entries:
            self.bytes -= self.entries.popleft()[3]
            dropped += 1
        self.counters.drop("overflow", dropped)

    def take(self, max_lines: int, max_bytes: int | None = None) -> list:
        """Up to ``max_lines`` entries (and ``max_bytes``, but at least one) from the front;
        they stay counted until :meth:`done` or :meth:`put_back`."""
        with self.lock:
            batch, size = [], 0
            while self.entries and len(batch) < max_lines:
                if max_bytes is not None and batch and size + self.entries[0][3] > max_bytes:
                    break
                size += self.entries[0][3]
                batch.append(self.entries.popleft())
            return batch

    def batch_bytes(self) -> int:
        """At most half the bound in one push: while a push hangs, the other half keeps
        room for the newest lines, so what overflows is always the oldest queued."""
        return self.max_bytes // 2

    def done(self, batch: list, dropped_reason: str | None = None) -> None:
        """The batch left the process: pushed, or given up (``dropped_reason``)."""
        size = sum([entry[3] for entry in batch])
        with self.lock:
            self.bytes -= size
            if dropped_reason is None:
                self.counters.sent_lines += len(batch)
            else:
                self.counters.drop(dropped_reason, len(batch))

    def put_back(self, batch: list) -> None:
        """A push to retry: the batch goes back in front, in order."""
        with self.lock:
            self.entries.extendleft(reversed(batch))
            if self.bytes > self.max_bytes:
                self._drop_oldest()

    def __len__(self) -> int:
        return len(self.entries)
