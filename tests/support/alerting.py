"""A real stack with its alerting half (Loki's ruler, Debian's Prometheus and Alertmanager)
for tests/real/test_alerts.py, and what the tests read from it.

Short intervals come from the settings, never from edited rules: the ruler and Prometheus
evaluate every ``EVAL`` (ALERT_EVAL_INTERVAL), a pipeline alert fires after ``FOR``
(ALERT_FOR), a burn-rate alert as soon as both of its windows exceed the rate
(ALERT_BURN_FOR=0s). The rule files are the project's own, rendered as ./stack renders them.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests

from stackctl import tools
from tests.support.env import free_port
from tests.support.local_http import QuietHandler, local_server
from tests.support.real import REQUIRED, start_real_stack
from tests.support.stack import RunningStack
from tests.support.waiting import wait_until

EVAL = "10s"
FOR = "10s"
SETTINGS = {"ALERT_EVAL_INTERVAL": EVAL, "ALERT_FOR": FOR, "ALERT_BURN_FOR": "0s"}


def binaries() -> dict[str, str]:
    """PROMETHEUS_BIN and ALERTMANAGER_BIN; else a failure (CI) or a skip."""
    gone = [why for why in (tools.missing("prometheus"), tools.missing("alertmanager")) if why]
    if gone:
        if REQUIRED:
            pytest.fail(f"STACK_REAL_TIER=required: {'; '.join(gone)}", pytrace=False)
        pytest.skip(f"alerting tier skipped: {'; '.join(gone)}")
    return {"PROMETHEUS_BIN": str(tools.path("prometheus")), "ALERTMANAGER_BIN": str(tools.path("alertmanager"))}


def start_alerting_stack(base: Path, **extra_env: str) -> RunningStack:
    env = {**binaries(), "PROMETHEUS_PORT": str(free_port()), "ALERTMANAGER_PORT": str(free_port()),
           **SETTINGS, **extra_env}
    return start_real_stack(base, **env)


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


class Alerting:
    """The stack's Prometheus and Alertmanager, through their HTTP APIs."""

    def __init__(self, stack: RunningStack):
        self.stack = stack
        self.prometheus = f"http://127.0.0.1:{stack.env['PROMETHEUS_PORT']}"
        self.alertmanager = f"http://127.0.0.1:{stack.env['ALERTMANAGER_PORT']}"
        self.session = _session()

    def _get(self, url: str, **params):
        resp = self.session.get(url, params=params, timeout=30)
        assert resp.status_code == 200, f"{url} {params}: {resp.status_code} {resp.text[:300]}"
        return resp.json()

    def query(self, promql: str) -> list[dict]:
        body = self._get(f"{self.prometheus}/api/v1/query", query=promql)
        return body["data"]["result"]

    def value(self, promql: str) -> float | None:
        """The single value of a query answering one series, None when it answers none."""
        result = self.query(promql)
        assert len(result) <= 1, (promql, result)
        return float(result[0]["value"][1]) if result else None

    def rule_groups(self) -> list[dict]:
        return self._get(f"{self.prometheus}/api/v1/rules")["data"]["groups"]

    def pending_or_firing(self) -> list[dict]:
        """Prometheus's alerts now, pending included."""
        return self._get(f"{self.prometheus}/api/v1/alerts")["data"]["alerts"]

    def received(self) -> list[dict]:
        """What Alertmanager holds as active now (API v2): alerts not yet resolved."""
        now = datetime.now(timezone.utc)
        return [a for a in self._get(f"{self.alertmanager}/api/v2/alerts")
                if datetime.fromisoformat(a["endsAt"].replace("Z", "+00:00")) > now]

    def find(self, name: str, **labels: str) -> list[dict]:
        return [a for a in self.received() if a["labels"].get("alertname") == name
                and all(a["labels"].get(k) == v for k, v in labels.items())]

    def wait_for_alert(self, name: str, timeout: float = 180, **labels: str) -> dict:
        """The alert once Alertmanager has it (as Prometheus sent it: firing)."""
        try:
            return wait_until(lambda: next(iter(self.find(name, **labels)), None), timeout,
                              f"{name} {labels} in Alertmanager", interval=2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; Prometheus has: {self.summary()}") from None

    def wait_resolved(self, names: set[str], timeout: float) -> None:
        def gone():
            return not {a["labels"]["alertname"] for a in self.received()} & names
        try:
            wait_until(gone, timeout, f"{sorted(names)} resolved in Alertmanager", interval=3)
        except AssertionError as exc:
            left = sorted({a["labels"]["alertname"] for a in self.received()} & names)
            raise AssertionError(f"{exc}; still active: {left}; Prometheus has: {self.summary()}") from None

    def summary(self) -> list[tuple]:
        return [(a["labels"]["alertname"], a["state"], a["annotations"].get("summary", "")[:120])
                for a in self.pending_or_firing()]


def uwsgi_workers(stack: RunningStack, instance: str) -> list[int]:
    """The worker processes of an instance: the children of its master (supervisord's PID)."""
    master = stack.pid(instance)
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def slo_lines(stack: RunningStack) -> list[dict]:
    """NGINX's lines of the requests the SLOs count (not the probes)."""
    return [r for r in stack.records("nginx") if not r["uri"].startswith(("/pc-builder-app/readyz",
                                                                          "/pc-builder-app/healthz"))]


def serving_again(stack: RunningStack) -> None:
    """Both instances answer again (NGINX retries an upstream it marked failed after its
    fail_timeout): probes, which the SLOs do not count, until 6 in a row answer 200."""
    streak = []

    def six_ok():
        streak.append(stack.request("/pc-builder-app/readyz").status == 200)
        return len(streak) >= 6 and all(streak[-6:])
    stack.wait_for(six_ok, timeout=60, what="both instances serving again")


def good_then_failed(stack: RunningStack, ok: int, failed: int) -> None:
    """``ok`` pages served, then ``failed`` answered 502 with both instances stopped (started
    again after, and serving): a known share of errors for the ruler to count."""
    for _ in range(ok):
        assert stack.request("/pc-builder-app/table").status == 200
    for name in ("app1", "app2"):
        stack.supervisorctl("stop", name)
    for _ in range(failed):
        assert stack.request("/pc-builder-app/table").status == 502
    for name in ("app1", "app2"):
        stack.supervisorctl("start", name)
    serving_again(stack)


#: the pauser: a process of its own, so that its 50 ms do not wait for the GIL of a test
#: process whose load threads all wake at once when the workers run; it says when the
#: workers are first stopped
PAUSER = """
import os, signal, sys, time
pause_s, pids = float(sys.argv[1]), [int(p) for p in sys.argv[2:]]
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
told = False
try:
    while True:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        if not told:
            print("stopped", flush=True)
            told = True
        time.sleep(pause_s)
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
        time.sleep(0.05)
finally:
    for pid in pids:
        os.kill(pid, signal.SIGCONT)
"""


@contextlib.contextmanager
def workers_paused(stack: RunningStack, pause_s: float = 3.0):
    """Every uWSGI worker of both instances stopped (SIGSTOP) ``pause_s`` in each
    ``pause_s`` + 0.05 s while the block runs, from its start: the requests it serves wait
    that long. Enter it before the load, or the load's first seconds are served at full speed."""
    workers = uwsgi_workers(stack, "app1") + uwsgi_workers(stack, "app2")
    pauser = subprocess.Popen([sys.executable, "-c", PAUSER, str(pause_s), *map(str, workers)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert pauser.stdout.readline() == "stopped\n", "the pauser ended before stopping the workers"
        yield
    finally:
        pauser.terminate()
        pauser.wait(timeout=30)
        pauser.stdout.close()
        for pid in workers:  # whatever the pauser's end, no worker stays stopped
            os.kill(pid, signal.SIGCONT)


class WebhookReceiver:
    """A team's webhook, stood in for by an http.server on 127.0.0.1: it records each
    notification Alertmanager POSTs (its webhook JSON). What it proves is Alertmanager's
    delivery to ALERT_WEBHOOK_URL, not any particular chat or paging service."""

    def __init__(self):
        self.notifications: list[dict] = []
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.notifications.append(json.loads(body))
                self.answer(200)

        self.server, thread = local_server(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"
        thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, status: str, name: str, timeout: float = 120) -> tuple[dict, dict]:
        """The first notification holding alert ``name`` with ``status`` (firing, resolved),
        and that alert."""
        def found():
            return next(((n, a) for n in list(self.notifications) for a in n["alerts"]
                         if a["labels"]["alertname"] == name and a["status"] == status), None)
        return wait_until(found, timeout, f"a {status} {name} notification at the webhook", interval=1)
