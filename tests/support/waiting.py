"""Polling for something another process writes (log lines, a fake server's requests)."""
from __future__ import annotations

import time


def wait_until(predicate, timeout: float = 10.0, what: str = "condition", interval: float = 0.05):
    """Return the first truthy ``predicate()``; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
