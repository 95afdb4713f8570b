"""The servers the benchmark runs side by side, each in private folders on free ports:
this stack through ./stack (tests/support/stack.py, the one stack runner), the original
configuration, and the Loki stand-in."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from stackctl import tools  # where ./stack installed each tool
from tests.support.env import clean_env, free_port
from tests.support.stack import ROOT, RunningStack, start_stack, stop_stack

from . import cpu

BENCH = Path(__file__).resolve().parent
UWSGI_BIN = str(tools.path("uwsgi"))
NGINX_BIN = str(tools.path("nginx"))
ORIGINAL_NGINX_CONF = BENCH / "original" / "nginx.conf"
READY = "/pc-builder-app/readyz"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def http_status(url: str, timeout: float = 2.0, headers: dict | None = None) -> int:
    try:
        req = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return 0


def wait_ready(url: str, timeout: float, what: str, alive=lambda: True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http_status(url) == 200:
            return
        if not alive():
            raise RuntimeError(f"{what} exited before {url} answered 200")
        time.sleep(0.3)
    raise RuntimeError(f"{what}: {url} did not answer 200 within {timeout:.0f}s")


class LokiSink:
    """bench/loki_sink.py as a child process (``count``: it counts what arrives)."""

    def __init__(self, workdir: Path, name: str = "loki-sink", count: bool = False):
        self.port = free_port()
        self.count = count
        self.log = open(workdir / f"{name}.err", "wb")
        self.proc: subprocess.Popen | None = None

    @property
    def push_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/loki/api/v1/push"

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.loki_sink", str(self.port)]
                                     + (["--count"] if self.count else []), cwd=ROOT,
                                     stdout=self.log, stderr=self.log, start_new_session=True)
        wait_ready(f"http://127.0.0.1:{self.port}/ready", 15, "loki sink",
                   alive=lambda: self.proc.poll() is None)

    def set_mode(self, mode: str) -> None:
        """``hang`` (accept pushes, never answer) or ``up``."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/mode", data=mode.encode(),
                                     method="POST")
        with urllib.request.urlopen(req, timeout=5):
            pass

    def stats(self) -> dict:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=2) as r:
                return json.load(r)
        except (OSError, ValueError) as exc:
            return {"error": str(exc)}

    def cpu_ns(self) -> int:
        return sum(cpu.thread_ns(self.proc.pid, t) for t in cpu.threads(self.proc.pid)) if self.proc else 0

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM)
        self.log.close()


def stop_process(proc: subprocess.Popen | None, sig: int, wait: float = 20) -> None:
    """Signal a child we started (its own session: its process group id is its pid)."""
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.send_signal(sig)
        proc.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


class StackServer:
    """This project's stack (``./stack up -d``) in ``workdir/name`` with ``settings``;
    ``real``: with the real Loki and Alloy (tests/support/real.py), on the same cores."""

    def __init__(self, name: str, workdir: Path, settings: dict[str, str], real: bool = False):
        self.name, self.settings, self.real = name, settings, real
        self.dir = workdir / name
        self.stack: RunningStack | None = None
        self._status: dict = {}

    @property
    def base_url(self) -> str:
        return self.stack.url

    @property
    def log_dir(self) -> Path:
        return self.stack.log_dir

    @property
    def loki_base(self) -> str:
        return f"http://127.0.0.1:{self.stack.env['LOKI_PORT']}" if self.real else ""

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            if self.real:
                from tests.support.real import start_real_stack
                self.stack = start_real_stack(self.dir, **self.settings)
            else:
                self.stack = start_stack(self.dir, **self.settings)
        except AssertionError as exc:  # ./stack up failed: its output is in the message
            raise RuntimeError(f"./stack up -d failed for '{self.name}': {exc}") from None
        self._status = self.stack.status()

    def stop(self) -> None:
        if self.stack is not None:
            stop_stack(self.stack)
            self.stack = None

    def cpu_snapshot(self) -> dict[str, int]:
        return cpu.snapshot(self._status)

    def log_counts(self) -> dict:
        return {
            "nginx_access_lines": count_lines(self.log_dir / "nginx" / "access.log"),
            "uwsgi_request_lines": count_matching(self.log_dir / "uwsgi", "uwsgi.request"),
            "app_request_finished_lines": count_matching(self.log_dir / "app", "request.finished"),
            "app_lines": sum(count_lines(p) for p in (self.log_dir / "app").glob("*.log")),
            # the shipper's own reports: what failed, and what it dropped
            "loki_reports": count_matching(self.log_dir / "app", "loki.report"),
        }

    def worker_pids(self) -> list[int]:
        """The uWSGI worker processes (children of each instance's master)."""
        return sorted({pid for pid, _tid in cpu.stack_threads(self._status)["uwsgi-worker"]})


class OriginalServer:
    """The original configuration: uwsgi --http (one process) behind a classic NGINX."""
    name = "original"

    def __init__(self, workdir: Path):
        self.dir = workdir / "original"
        self.log_dir = self.dir / "log"
        self.run_dir = self.dir / "run"
        self.http_port = free_port()
        self.uwsgi_port = free_port()
        self.uwsgi: subprocess.Popen | None = None
        self.nginx: subprocess.Popen | None = None
        self._files = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def _out(self, name: str):
        f = open(self.log_dir / name, "wb")
        self._files.append(f)
        return f

    def start(self) -> None:
        for d in (self.log_dir, self.run_dir, self.dir / "data"):
            d.mkdir(parents=True, exist_ok=True)
        conf = ORIGINAL_NGINX_CONF.read_text()
        values = {"NGINX_USER": _user(), "RUN_DIR": str(self.run_dir), "LOG_DIR": str(self.log_dir),
                  "HTTP_PORT": str(self.http_port), "UWSGI_HTTP_PORT": str(self.uwsgi_port)}
        conf = re.sub(r"\$\{([A-Z_]+)\}", lambda m: values[m.group(1)], conf)
        (self.run_dir / "nginx.conf").write_text(conf)

        env = clean_env(PYTHONPATH=str(ROOT / "service"), DATA_DIR=str(self.dir / "data"),
                        INSTANCE="original", LOG_LEVEL="WARNING",
                        APP_LOG_FILE=str(self.log_dir / "app.log"))
        # uWSGI's defaults otherwise: one worker, no threads, text request lines on stderr.
        self.uwsgi = subprocess.Popen(
            [str(UWSGI_BIN), "--http", f"127.0.0.1:{self.uwsgi_port}", "--master",
             "--processes", "1", "--module", "pcbuilder.wsgi:app",
             "--pythonpath", str(ROOT / "service"), "--need-app"],
            cwd=self.dir, env=env, stdin=subprocess.DEVNULL,
            stdout=self._out("uwsgi.log"), stderr=subprocess.STDOUT, start_new_session=True)
        nginx_cmd = [NGINX_BIN, "-p", str(self.run_dir), "-c", str(self.run_dir / "nginx.conf")]
        test = subprocess.run(nginx_cmd + ["-t", "-q"], capture_output=True, text=True)
        if test.returncode != 0:
            raise RuntimeError("nginx rejects bench/original/nginx.conf:\n" + test.stderr)
        self.nginx = subprocess.Popen(
            nginx_cmd + ["-g", "daemon off;"], stdin=subprocess.DEVNULL,
            stdout=self._out("nginx.out"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_ready(self.base_url + READY, 60, "original configuration",
                   alive=lambda: self.uwsgi.poll() is None and self.nginx.poll() is None)

    def stop(self) -> None:
        stop_process(self.nginx, signal.SIGQUIT)   # graceful
        stop_process(self.uwsgi, signal.SIGINT)    # uWSGI: SIGINT stops (SIGTERM would reload)
        for f in self._files:
            f.close()
        self._files = []

    def cpu_snapshot(self) -> dict[str, int]:
        return {}

    def log_counts(self) -> dict:
        return {
            "nginx_access_lines": count_lines(self.log_dir / "access.log"),
            "uwsgi_request_lines": count_matching_file(self.log_dir / "uwsgi.log", "[pid: "),
        }


def _user() -> str:
    import pwd
    return pwd.getpwuid(os.geteuid()).pw_name


def count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def count_matching_file(path: Path, needle: str) -> int:
    if not path.exists():
        return 0
    needle_b = needle.encode()
    with open(path, "rb") as f:
        return sum(1 for line in f if needle_b in line)


def count_matching(directory: Path, needle: str) -> int:
    return sum(count_matching_file(p, needle) for p in directory.glob("*.log")) if directory.exists() else 0


def sweep_leftovers(workdir: Path) -> list[int]:
    """Last resort after a stop: processes of ours whose command line names our private
    work directory (uWSGI and NGINX started by ./stack, whose paths all live there)."""
    mine = str(workdir)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if mine in cmdline:
            found.append(int(entry.name))
    for pid in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return found


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of these processes, summed (from /proc/PID/status VmRSS)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total
