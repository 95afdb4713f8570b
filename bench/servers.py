"""The servers the benchmark runs side by side, each in private dirs on free ports:
this stack through ./stack, the original configuration, and the Loki stand-in."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
STACK = ROOT / "stack"
sys.path.insert(0, str(ROOT))
from stackctl import tools  # noqa: E402  (where ./stack installed each tool)

UWSGI_BIN = str(tools.path("uwsgi"))
NGINX_BIN = str(tools.path("nginx"))
ORIGINAL_NGINX_CONF = BENCH / "original" / "nginx.conf"
LOKI_SINK = BENCH / "loki_sink.py"
READY = "/pc-builder-app/readyz"


# Environment variables that would change what a server does; every server gets a clean
# environment plus only the settings its configuration needs.
_SCRUB = re.compile(r"^(UWSGI_|LOKI_|NGINX_|HTTP_|HTTPS_|TLS_)|^(LOG_LEVEL|LOG_DIR|DATA_DIR|RUN_DIR|"
                    r"APP_INSTANCES|APP_LOG_FILE|DATABASE_PATH|INSTANCE|STACK_ENV|"
                    r"STACK_START_TIMEOUT|PYTHONPATH)$")


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not _SCRUB.search(k)}
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
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
        self.proc = subprocess.Popen([sys.executable, str(LOKI_SINK), str(self.port)]
                                     + (["--count"] if self.count else []),
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


@dataclass
class StackServer:
    """This project's stack, started and stopped with ./stack on private dirs and ports."""
    name: str
    workdir: Path
    settings: dict[str, str]
    http_port: int = field(default_factory=free_port)
    https_port: int = field(default_factory=free_port)
    started: bool = False

    def __post_init__(self):
        self.dir = self.workdir / self.name
        self.log_dir = self.dir / "log"
        self.env = clean_env(
            HTTP_PORT=str(self.http_port), HTTPS_PORT=str(self.https_port),
            LOG_DIR=str(self.log_dir), DATA_DIR=str(self.dir / "data"),
            RUN_DIR=str(self.dir / "run"), STACK_START_TIMEOUT="120", **self.settings)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        self.started = True  # even a failed start may leave supervisord to stop
        result = subprocess.run([str(STACK), "up", "-d"], cwd=ROOT, env=self.env,
                                capture_output=True, text=True)
        (self.dir / "stack-up.out").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise RuntimeError(f"./stack up -d failed for '{self.name}':\n"
                               + (result.stderr or result.stdout).strip())

    def stop(self) -> None:
        if not self.started:
            return
        result = subprocess.run([str(STACK), "down"], cwd=ROOT, env=self.env,
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            say(f"bench: ./stack down for '{self.name}' said: {(result.stderr or result.stdout).strip()}")
        self.started = False

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
        status = subprocess.run([str(STACK), "status", "--json"], cwd=ROOT, env=self.env,
                                capture_output=True, text=True)
        masters = {p["pid"] for p in json.loads(status.stdout).get("processes", [])
                   if p.get("role") == "uwsgi" and p.get("pid")}
        return [pid for pid, ppid in _process_parents().items() if ppid in masters]


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




def _process_parents() -> dict[int, int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


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
