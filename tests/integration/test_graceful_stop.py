"""./stack down under load: requests in flight finish, no log line is cut short."""
from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time

import pytest

from tests.support.stack import start_stack, stop_stack
from tests.support.upstream_attempts import assert_none_waited, failed_attempts

pytestmark = pytest.mark.integration


def test_down_during_load_lets_in_flight_requests_finish(tmp_path):
    stack = start_stack(tmp_path)
    outcomes, stop = [], threading.Event()

    def stream(worker: int):
        n = 0
        while not stop.is_set():
            n += 1
            conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
            try:
                conn.request("GET", "/pc-builder-app/table", headers={"X-Request-ID": f"drain-{worker}-{n:05d}"})
            except OSError as exc:  # not accepted any more: NGINX has closed its listener
                outcomes.append(("refused", type(exc).__name__))
                conn.close()
                time.sleep(0.05)
                continue
            try:
                resp = conn.getresponse()
                body = resp.read()  # IncompleteRead if the response were cut
                complete = resp.getheader("Content-Length") in (None, str(len(body)))
                outcomes.append(("response", resp.status, complete))
            except (ConnectionResetError, http.client.RemoteDisconnected) as exc:
                # closed before any status line: queued but never accepted
                outcomes.append(("refused", type(exc).__name__))
            finally:
                conn.close()

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(4)]
    try:
        for t in threads:
            t.start()
        time.sleep(1.5)
        down = stack.run("down", timeout=90)
        assert "stopped" in down.stdout
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
        stop_stack(stack)

    responses = [o for o in outcomes if o[0] == "response"]
    assert len(responses) > 20
    assert [o for o in responses if o[1] != 200 or not o[2]] == []
    assert any(o[0] == "refused" for o in outcomes), "the stack never stopped accepting"
    for path in [stack.log_dir / "nginx" / "access.log", *stack.log_dir.glob("uwsgi/*.log"),
                 *stack.log_dir.glob("app/*.log")]:
        data = path.read_bytes()
        assert data.endswith(b"\n"), f"{path} ends with a cut line"
        for line in data.splitlines():
            json.loads(line)
    served = {json.loads(l)["request_id"] for l in (stack.log_dir / "nginx" / "access.log").read_bytes().splitlines()}
    assert sum(1 for rid in served if rid.startswith("drain-")) == len(responses)


def test_a_stopping_instance_refuses_at_once_so_no_request_waits_on_it(tmp_path):
    """One uWSGI instance stops (SIGTERM, as `docker stop` sends) under sequential load.
    From its first moment it refuses connections (uwsgi.ini shutdown-sockets) and NGINX
    passes each refused request to the other instance at once. Without it, a connection
    NGINX opened meanwhile sat in the stopping instance's listen queue until the master
    exited, about a second later, and was then reset (unbit/uwsgi#2693)."""
    stack = start_stack(tmp_path)
    try:
        victim = next(p for p in stack.status()["processes"] if p.get("role") == "uwsgi")
        socket = victim["socket"]
        outcomes, stop = [], threading.Event()

        def sequential():
            n = 0
            while not stop.is_set():
                n += 1
                rid = f"stop-one-{n:05d}"
                outcomes.append((rid, stack.request("/pc-builder-app/healthz", headers={"X-Request-ID": rid}).status))

        loader = threading.Thread(target=sequential)
        loader.start()
        try:
            stack.wait_for(lambda: len(outcomes) >= 50, 30, "load before the stop")
            os.kill(victim["pid"], signal.SIGTERM)
            stack.wait_for(lambda: any(r.get("msg") == "goodbye to uWSGI." for r in stack.records("uwsgi", victim["name"])),
                           30, "the instance's graceful exit")
            count = len(outcomes)
            stack.wait_for(lambda: len(outcomes) >= count + 50, 30, "load after the stop")
        finally:
            stop.set()
            loader.join()
        assert [o for o in outcomes if o[1] != 200] == []
        ids = {rid for rid, _ in outcomes}
        lines = [r for r in stack.records("nginx") if r.get("request_id") in ids]
        met = failed_attempts(lines, lambda addr: addr == f"unix:{socket}")
        assert met, "no request met the stopping instance: the test proved nothing"
        assert {status for _, status, _ in met} == {"502"}  # refused, then answered by the other
        assert_none_waited(met)
    finally:
        stop_stack(stack)
