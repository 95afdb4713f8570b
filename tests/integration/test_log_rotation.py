"""Log rotation under load through ./stack: a small LOG_MAX_SIZE fills many times while
requests flow; every request id is still in the files exactly once per layer (current and
rotated files together) and reaches the Loki push endpoint (the in-test FakeLoki, not
Loki) exactly once. Rotation is by rename, so this also proves that NGINX (USR1), uWSGI
(touch-logreopen) and the app (inode check) each switched to the new file."""
from __future__ import annotations

import collections
import json
import re
import threading
import urllib.request
from pathlib import Path

import pytest

from tests.support.stack import UWSGI_OWN_LINE, start_stack, stop_stack
from tests.support.fake_loki import FakeLoki

pytestmark = pytest.mark.integration

MAX_REQUESTS, THREADS = 5000, 4
# rotated files per layer to wait for (uWSGI and app: two instances)
WANT_ROTATED = {"nginx": 3, "uwsgi": 4, "app": 4}
ALLOY_CONFIG = Path(__file__).resolve().parents[2] / "observability" / "alloy" / "config.alloy"
LAYERS = {"nginx": ("nginx/access.log*", "nginx.access"),
          "uwsgi": ("uwsgi/*.log*", "uwsgi.request"),
          "app": ("app/*.log*", "request.finished")}


def records(log_dir, pattern: str) -> tuple[list[dict], list[str], int]:
    """Every JSON line of the current and rotated files, the non-JSON lines, and how many
    rotated files there are."""
    found, other, files = [], [], sorted(log_dir.glob(pattern))
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                found.append(json.loads(line))
            except ValueError:
                other.append(line)
    return found, other, sum(1 for f in files if not f.name.endswith(".log"))


def alloy_drops(line: str) -> bool:
    """Whether the uwsgi pipeline's stage.drop in config.alloy drops this line (its RE2
    expression is plain enough to mean the same to Python's re)."""
    block = ALLOY_CONFIG.read_text().split('loki.process "uwsgi"', 1)[1].split("stage.drop", 1)[1]
    expression = json.loads(re.search(r'expression\s*=\s*("(?:[^"\\]|\\.)*")', block).group(1))
    return re.search(expression, line) is not None


def shipped_ids(loki: FakeLoki) -> list[str]:
    return [line.get("request_id") for line in loki.lines() if line.get("event") == "request.finished"]


def load(port: int, worker: int, sent: list, failures: list, stop: threading.Event) -> None:
    """Requests with unique ids, one after another, until told to stop (or MAX_REQUESTS)."""
    n = 0
    while not stop.is_set() and n < MAX_REQUESTS // THREADS:
        rid = f"rotation-{worker}-{n:05d}"
        n += 1
        sent.append(rid)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/pc-builder-app/main",
                                     headers={"X-Request-ID": rid})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                resp.read()
                if resp.status != 200:
                    failures.append((rid, resp.status))
        except OSError as exc:
            failures.append((rid, repr(exc)))


def test_every_line_survives_rotation_exactly_once(tmp_path):
    with FakeLoki() as loki:
        # 8 KiB fills within a second or two under this load; 50 old files keep them all
        stack = start_stack(tmp_path, LOKI_URL=loki.url, LOG_MAX_BYTES="8192", LOG_KEEP="50",
                            LOG_ROTATE_INTERVAL="1")
        sent: list[str] = []
        failures: list = []
        stop = threading.Event()
        threads = [threading.Thread(target=load, args=(stack.port, i, sent, failures, stop))
                   for i in range(THREADS)]
        try:
            for t in threads:
                t.start()
            # keep the load on while each layer's files rotate several times
            stack.wait_for(lambda: all(records(stack.log_dir, LAYERS[layer][0])[2] >= n
                                       for layer, n in WANT_ROTATED.items()),
                           timeout=120, what=f"rotations under load: {WANT_ROTATED}")
            stop.set()
            for t in threads:
                t.join()
            assert failures == []
            wanted = set(sent)

            def all_lines_written():
                # the app's last lines may wait for its next write check; uWSGI's for a flush
                return all(wanted <= {r.get("request_id") for r in records(stack.log_dir, pattern)[0]
                                      if r.get("event") == event}
                           for pattern, event in LAYERS.values())

            stack.wait_for(all_lines_written, timeout=20, what="every id in every layer's files")
            stack.wait_for(lambda: wanted <= set(shipped_ids(loki)), timeout=20,
                           what="every id at the Loki push endpoint")
        finally:
            stop.set()
            for t in threads:
                t.join()
            stop_stack(stack)
        shipped = shipped_ids(loki)  # after the app's final flush: duplicates would show now

    ids = sorted(set(sent))
    assert len(ids) == len(sent)
    for layer, (pattern, event) in LAYERS.items():
        found, other, rotated = records(stack.log_dir, pattern)
        counts = collections.Counter(r.get("request_id") for r in found if r.get("event") == event)
        assert {rid: counts[rid] for rid in ids if counts[rid] != 1} == {}, f"{layer}: not exactly once"
        assert rotated >= WANT_ROTATED[layer]
        bad = [line for line in other if not (layer == "uwsgi" and UWSGI_OWN_LINE.match(line))]
        assert bad == [], f"{layer}: lines that are not JSON"
        if layer == "uwsgi":
            assert any("triggering rotation" in line for line in other), "did uWSGI rotate its file?"
            assert all(alloy_drops(line) for line in other)
            assert not any(alloy_drops(json.dumps(r)) for r in found)
    shipped_counts = collections.Counter(shipped)
    assert {rid: shipped_counts[rid] for rid in ids if shipped_counts[rid] != 1} == {}
