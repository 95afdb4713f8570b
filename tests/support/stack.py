"""Starts a real stack (nginx + uWSGI through ./stack) on a free port in private folders.

Used by the integration and browser tests. Each stack gets its own HTTP port, LOG_DIR,
DATA_DIR and RUN_DIR, so several can run side by side; teardown stops it with
``./stack down`` and then makes sure, by PID, that nothing it started is left.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.support.env import free_port
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
# uWSGI writes a few lines of its own raw into its `logto` file (service/uwsgi.ini): the
# last line of a file it rotated, the two around a reopen, and what a re-executed master
# prints before its logging is set up (./stack reload).
UWSGI_OWN_LINE = re.compile(
    r"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} - logsize: \d+, triggering rotation to /\S+\.\.\.$"
    r"|\[\d+\] (logsize: \d+, triggering log-reopen\.\.\.|/\S+ reopened\.)$"
    r"|\[(uWSGI|log-encoder|log-req-encoder)\] ")
STACK = ROOT / "stack"


@dataclass
class Response:
    status: int
    headers: dict
    body: bytes


@dataclass
class RunningStack:
    env: dict
    base: Path
    port: int
    start_output: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.env['HTTPS_PORT']}"

    @property
    def log_dir(self) -> Path:
        return Path(self.env["LOG_DIR"])

    @property
    def run_dir(self) -> Path:
        return Path(self.env["RUN_DIR"])

    def run(self, *args: str, check: bool = True, timeout: float = 120,
            env: dict | None = None) -> subprocess.CompletedProcess:
        """``./stack <args>`` with the stack's settings (and ``env`` on top)."""
        result = subprocess.run([str(STACK), *args], env={**self.env, **(env or {})}, cwd=ROOT,
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"./stack {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def request(self, path: str, method: str = "GET", headers: dict | None = None,
                body: bytes | None = None, timeout: float = 10) -> Response:
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return Response(resp.status, dict(resp.headers), resp.read())
        except urllib.error.HTTPError as exc:
            return Response(exc.code, dict(exc.headers), exc.read())

    def status(self) -> dict:
        return json.loads(self.run("status", "--json", check=False).stdout)

    def lines(self, layer: str, instance: str | None = None) -> list[str]:
        """Raw lines of a layer's log files (all instances unless one is named)."""
        if layer == "nginx":
            files = [self.log_dir / "nginx" / "access.log"]
        else:
            files = sorted((self.log_dir / layer).glob(f"{instance or '*'}.log"))
        out = []
        for f in files:
            if f.exists():
                out += f.read_bytes().decode("utf-8", "surrogateescape").splitlines()
        return out

    def records(self, layer: str, instance: str | None = None) -> list[dict]:
        """Every line parsed strictly as JSON (a bad line fails the test), except the few
        plain-text lines uWSGI itself writes into its file (UWSGI_OWN_LINE)."""
        return [json.loads(line) for line in self.lines(layer, instance)
                if not (layer == "uwsgi" and UWSGI_OWN_LINE.match(line))]

    def wait_for(self, predicate, timeout: float = 10, what: str = "condition"):
        return wait_until(predicate, timeout, what, interval=0.1)

    def supervisorctl(self, *args: str) -> None:
        """Stop, start or restart one of the stack's programs (``stop loki``, ``start app1``)."""
        ctl = [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(self.run_dir / "supervisord.conf")]
        subprocess.run([*ctl, *args], check=True, capture_output=True, timeout=90)

    def pid(self, name: str) -> int:
        """The PID of the stack's program ``name`` (``loki``, ``app1``...), as ./stack status shows it."""
        (pid,) = [p["pid"] for p in self.status()["processes"] if p["name"] == name]
        return pid

    def pids(self) -> list[int]:
        pids = []
        for name in ["supervisord.pid", "nginx.pid"]:
            try:
                pids.append(int((self.run_dir / name).read_text()))
            except (OSError, ValueError):
                pass
        return pids


def rotation_records(log_dir: Path, pattern: str) -> tuple[list[dict], list[str], int]:
    """Every JSON line of a layer's current and rotated files (``pattern``, e.g.
    ``uwsgi/*.log*``), the lines that are not JSON, and how many rotated files there are."""
    found, other, files = [], [], sorted(log_dir.glob(pattern))
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:  # renamed between the glob and the read: the next poll sees it
            continue
        for line in text.splitlines():
            try:
                found.append(json.loads(line))
            except ValueError:
                other.append(line)
    return found, other, sum(1 for f in files if not f.name.endswith(".log"))


def private_env(base: Path, **extra_env: str) -> dict[str, str]:
    """The environment of a stack of a test's own: free ports, folders under ``base``, no
    LOKI_URL from the caller, and the real Loki and Alloy (and Prometheus and Alertmanager)
    only where a test asks for them (tests/support/real.py, alerting.py) — else a found
    binary would start on its default ports."""
    env = {
        **os.environ,
        "HTTP_PORT": str(free_port()),
        "HTTPS_PORT": str(free_port()),
        "HTTP_ADDR": "127.0.0.1",
        "LOG_DIR": str(base / "log"),
        "DATA_DIR": str(base / "data"),
        "RUN_DIR": str(base / "run"),
        "APP_INSTANCES": "2",
        "LOKI_BIN": "off",
        "ALLOY_BIN": "off",
        "PROMETHEUS_BIN": "off",
        "ALERTMANAGER_BIN": "off",
        # No request keeps its detail by chance (sampled, or slow on a busy machine), so
        # tests that count lines stay exact; tests of detail on demand set their own.
        "LOG_DETAIL_SAMPLE": "0",
        "LOG_DETAIL_SLOW_MS": "60000",
        **extra_env,
    }
    if "LOKI_URL" not in extra_env:
        env.pop("LOKI_URL", None)
    return env


def start_stack(base: Path, **extra_env: str) -> RunningStack:
    env = private_env(base, **extra_env)
    stack = RunningStack(env=env, base=base, port=int(env["HTTP_PORT"]))
    stack.start_output = stack.run("up", "-d", timeout=180).stdout
    return stack


def stop_stack(stack: RunningStack) -> None:
    """./stack down, then SIGKILL by PID whatever of ours is still alive."""
    survivors = stack.pids() + [p["pid"] for p in stack.status().get("processes", []) if p.get("pid")]
    stack.run("down", check=False, timeout=90)
    for pid in survivors:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
