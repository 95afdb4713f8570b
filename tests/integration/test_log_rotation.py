"""Log rotation under load through ./stack: a small LOG_MAX_SIZE fills many times while
requests flow; every request id is still in the files exactly once per layer (current and
rotated files together). Rotation is by rename, so this also proves that NGINX (USR1),
uWSGI (touch-logreopen) and the app (inode check) each switched to the new file. That
every id also reaches Loki exactly once, with Alloy following the renames, is proven with
the real Loki and Alloy: tests/real/test_rotation_with_alloy.py."""
from __future__ import annotations

import collections

import pytest

from tests.support.load import Load
from tests.support.stack import UWSGI_OWN_LINE, rotation_records, start_stack, stop_stack

pytestmark = pytest.mark.integration

MAX_REQUESTS, THREADS = 5000, 4
# rotated files per layer to wait for (uWSGI and app: two instances)
WANT_ROTATED = {"nginx": 3, "uwsgi": 4, "app": 4}
LAYERS = {"nginx": ("nginx/access.log*", "nginx.access"),
          "uwsgi": ("uwsgi/*.log*", "uwsgi.request"),
          "app": ("app/*.log*", "request.finished")}


def test_every_line_survives_rotation_exactly_once(tmp_path):
    # 8 KiB fills within a second or two under this load; 50 old files keep them all
    stack = start_stack(tmp_path, LOG_MAX_BYTES="8192", LOG_KEEP="50", LOG_ROTATE_INTERVAL="1")
    try:
        with Load(stack, "rotation", threads=THREADS, max_requests=MAX_REQUESTS) as load:
            # keep the load on while each layer's files rotate several times
            stack.wait_for(lambda: all(rotation_records(stack.log_dir, LAYERS[layer][0])[2] >= n
                                       for layer, n in WANT_ROTATED.items()),
                           timeout=120, what=f"rotations under load: {WANT_ROTATED}")
        assert load.failures == []
        wanted = set(load.sent)

        def all_lines_written():
            # the app's last lines may wait for its next write check; uWSGI's for a flush
            return all(wanted <= {r.get("request_id") for r in rotation_records(stack.log_dir, pattern)[0]
                                  if r.get("event") == event}
                       for pattern, event in LAYERS.values())

        stack.wait_for(all_lines_written, timeout=20, what="every id in every layer's files")
    finally:
        stop_stack(stack)

    ids = sorted(wanted)
    assert len(ids) == len(load.sent)
    for layer, (pattern, event) in LAYERS.items():
        found, other, rotated = rotation_records(stack.log_dir, pattern)
        counts = collections.Counter(r.get("request_id") for r in found if r.get("event") == event)
        assert {rid: counts[rid] for rid in ids if counts[rid] != 1} == {}, f"{layer}: not exactly once"
        assert rotated >= WANT_ROTATED[layer]
        bad = [line for line in other if not (layer == "uwsgi" and UWSGI_OWN_LINE.match(line))]
        assert bad == [], f"{layer}: lines that are not JSON"
        if layer == "uwsgi":
            assert any("triggering rotation" in line for line in other), "did uWSGI rotate its file?"
