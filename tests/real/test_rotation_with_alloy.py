"""Log rotation under load with the real Alloy following the renames, into the real Loki.

Every layer's files rotate several times (LOG_MAX_BYTES of 8 KiB) while requests flow;
afterwards every request id is in Loki exactly once per layer: NGINX's and uWSGI's lines
through Alloy (which reads a renamed file to its end, then opens the new one, and never
reads a rotated file a second time), the app's through its own shipper. uWSGI's plain-text
lines about its rotation are in its files but not in Loki (Alloy drops them).
tests/integration/test_log_rotation.py checks the files themselves.
"""
from __future__ import annotations

import pytest

from tests.support.load import Load
from tests.support.real import loki_of, start_real_stack
from tests.support.stack import UWSGI_OWN_LINE, rotation_records, stop_stack

pytestmark = [pytest.mark.real, pytest.mark.integration]

LAYERS = ("nginx", "uwsgi", "app")
# rotated files per layer to wait for (uWSGI and app: two instances each)
WANT_ROTATED = {"nginx/access.log*": 3, "uwsgi/*.log*": 4, "app/*.log*": 4}


def test_every_id_reaches_loki_exactly_once_across_rotations(tmp_path):
    # 8 KiB fills within a second or two under this load; 50 old files keep them all
    stack = start_real_stack(tmp_path, LOG_MAX_BYTES="8192", LOG_KEEP="50", LOG_ROTATE_INTERVAL="1")
    try:
        with Load(stack, "rotalloy", threads=4, max_requests=5000) as load:
            stack.wait_for(lambda: all(rotation_records(stack.log_dir, pattern)[2] >= n
                                       for pattern, n in WANT_ROTATED.items()),
                           timeout=180, what=f"rotations under load: {WANT_ROTATED}")
        assert load.failures == []
        loki = loki_of(stack)
        counts = loki.wait_for_ids(load.sent, "rotalloy-", LAYERS, timeout=120)
        for layer in LAYERS:
            assert dict(counts[layer]) == {rid: 1 for rid in load.sent}, f"{layer}: not exactly once"

        plain = [line for line in rotation_records(stack.log_dir, "uwsgi/*.log*")[1]
                 if UWSGI_OWN_LINE.match(line)]
        assert any("triggering rotation" in line for line in plain), "did uWSGI rotate its file?"
        assert loki.query_range('{service_name="pc-builder", layer="uwsgi"} !~ "^[{]"') == []
    finally:
        stop_stack(stack)
