"""./stack logs -f on a real stack: -n N before following (0: only new lines), the lines of
every layer's files merged in time order, and the filters applied to what it follows."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest

from tests.support.stack import ROOT, STACK

pytestmark = [pytest.mark.integration, pytest.mark.reads_stack]


class Follower:
    """``./stack logs ARGS`` running, its printed lines collected by a thread."""

    def __init__(self, stack, *args: str):
        self.proc = subprocess.Popen([str(STACK), "logs", *args], env=stack.env, cwd=ROOT, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    def has(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def stop(self) -> list[str]:
        os.killpg(self.proc.pid, signal.SIGINT)
        assert self.proc.wait(20) == 0, self.proc.stderr.read()
        self.reader.join(5)
        return self.lines


def _until_live(stack, follower, prefix: str) -> None:
    """Requests until one shows in the follower's output: from then on it follows."""
    for n in range(60):
        stack.request("/pc-builder-app/main", headers={"X-Request-ID": f"{prefix}-{n:04d}"})
        time.sleep(0.3)
        if follower.has(f"{prefix}-"):
            return
    raise AssertionError(f"./stack logs never showed a line: {follower.lines}")


def test_follow_only_new_lines_merged_in_time_order(stack):
    for n in range(3):
        stack.request("/pc-builder-app/main", headers={"X-Request-ID": f"history-{n:04d}"})
    follower = Follower(stack, "-n", "0", "-f")
    try:
        _until_live(stack, follower, "probe")
        ids = [f"merged-{n:04d}" for n in range(12)]
        for rid in ids:  # several per poll of the files, from both instances
            assert stack.request("/pc-builder-app/table", headers={"X-Request-ID": rid}).status == 200
        stack.wait_for(lambda: all(follower.has(f"nginx.access           {rid}") for rid in ids),
                       timeout=20, what="every request's NGINX line followed")
    finally:
        lines = follower.stop()
    assert not any("history-" in line for line in lines)  # -n 0: nothing from before
    for rid in ids:  # every layer's line of each request, once
        for event in ("nginx.access", "uwsgi.request", "request.finished"):
            assert sum(f"{event}" in line and rid in line for line in lines) == 1, (rid, event)
    stamps = [line.split(" ", 1)[0] for line in lines]
    assert stamps == sorted(stamps), "\n".join(lines)


def test_last_lines_then_follow_through_the_filters(stack):
    for n in range(4):
        stack.request("/pc-builder-app/main", headers={"X-Request-ID": f"before-{n:04d}"})
    wanted = ("--layer", "nginx", "--status", "2xx")
    expected = stack.run("logs", "-n", "2", *wanted).stdout.splitlines()
    assert len(expected) == 2 and all("nginx.access" in line for line in expected)
    follower = Follower(stack, "-n", "2", "-f", *wanted)
    try:
        stack.wait_for(lambda: len(follower.lines) >= 2, what="the last two lines")
        _until_live(stack, follower, "live")
        assert stack.request("/pc-builder-app/no-such-page",
                             headers={"X-Request-ID": "missing-page-0001"}).status == 404
        assert stack.request("/pc-builder-app/main", headers={"X-Request-ID": "after-0001"}).status == 200
        stack.wait_for(lambda: follower.has("after-0001"), timeout=20, what="the 200 followed")
    finally:
        lines = follower.stop()
    assert lines[:2] == [line + "\n" for line in expected]
    assert all(" nginx/" in line and " status=2" in line for line in lines)
    assert not any("missing-page-0001" in line for line in lines)  # a 404: filtered out
