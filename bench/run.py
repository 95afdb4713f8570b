#!/usr/bin/env python3
"""Benchmarks of the PC-builder stack with wrk, on loopback (see bench/README.md).

Starts three server configurations side by side, each in private temporary directories
on free ports:

  full      this stack (./stack up -d): JSON logs at NGINX, uWSGI and the app, and the app
            shipping its lines to a local Loki stand-in (bench/loki_sink.py)
  off       this stack with logging off: NGINX_ACCESS_LOG=off, UWSGI_DISABLE_LOGGING=1,
            LOG_LEVEL=WARNING, no LOKI_URL
  original  the original app's configuration: one uWSGI process with --http serving
            pcbuilder.wsgi:app, behind a classic NGINX (bench/original/nginx.conf,
            proxy_pass, "combined" text access log); Flask serves the static files

then warms every target up and runs wrk on them in rounds (A, B, A, B, ...), so that
every pair compared was measured interleaved in the same run, and reports ratios of
medians:

  1. full vs off on /pc-builder-app/table        goal >= 0.95x req/s and p99 <= 1.1x
  2. full vs original on /pc-builder-app/table   goal >= 1.5x req/s
  3. full vs original on a static file           goal >= 10x req/s

Results: bench/results/latest.json (every run, the machine, the settings) and a markdown
table on stdout. Everything it starts is stopped at the end, also on Ctrl-C or errors.
Only the standard library is used; run it as ./bench/run or .venv/bin/python bench/run.py.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
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

VENV_PYTHON = tools.venv_dir() / "bin" / "python"
UWSGI_BIN = str(tools.path("uwsgi"))
NGINX_BIN = str(tools.path("nginx"))
WRK_BIN = str(tools.path("wrk"))
REPORT_LUA = BENCH / "wrk_report.lua"
ORIGINAL_NGINX_CONF = BENCH / "original" / "nginx.conf"
LOKI_SINK = BENCH / "loki_sink.py"
DEFAULT_OUTPUT = BENCH / "results" / "latest.json"

TABLE = "/pc-builder-app/table"
STATIC = "/pc-builder-app/static/css/app.css"
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


def parse_duration(text: str) -> int:
    """'10s', '2m', '10' -> seconds."""
    m = re.fullmatch(r"\s*(\d+)\s*([smh]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 10s or 1m)")
    return int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


# --- servers -----------------------------------------------------------------------------

class LokiSink:
    """bench/loki_sink.py as a child process."""

    def __init__(self, workdir: Path, hang: bool = False):
        self.port = free_port()
        self.hang = hang
        self.log = open(workdir / ("loki-sink-hanging.err" if hang else "loki-sink.err"), "wb")
        self.proc: subprocess.Popen | None = None

    @property
    def push_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/loki/api/v1/push"

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(LOKI_SINK), str(self.port)]
                                     + (["--hang"] if self.hang else []),
                                     stdout=self.log, stderr=self.log, start_new_session=True)
        wait_ready(f"http://127.0.0.1:{self.port}/ready", 15, "loki sink",
                   alive=lambda: self.proc.poll() is None)

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
            # the shipper's own reports: lines it dropped (queue full) or lost (failed posts)
            "loki_dropped_reports": count_matching(self.log_dir / "app", "loki.dropped"),
            "loki_send_failed_reports": count_matching(self.log_dir / "app", "loki.send_failed"),
        }


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


# --- wrk ---------------------------------------------------------------------------------

def run_wrk(url: str, seconds: int, args) -> dict:
    cmd = [WRK_BIN, "-t", str(args.threads), "-c", str(args.connections), "-d", f"{seconds}s",
           "--timeout", args.timeout, "--latency", "-s", str(REPORT_LUA), url]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}")
    report = None
    for line in result.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            report = json.loads(line[len("BENCH_JSON "):])
    if report is None:
        raise RuntimeError("wrk printed no BENCH_JSON line (is bench/wrk_report.lua intact?):\n" + result.stdout)
    m = re.search(r"Requests/sec:\s*([\d.]+)", result.stdout)
    lat = report["latency_us"]
    errors = report["errors"]
    return {
        "requests": report["requests"],
        "duration_s": report["duration_us"] / 1e6,
        "requests_per_s": report["requests"] / (report["duration_us"] / 1e6),
        "wrk_text_requests_per_s": float(m.group(1)) if m else None,
        "bytes": report["bytes"],
        "errors": errors,
        "failed": sum(errors.values()),
        "latency_ms": {k: lat[k] / 1000 for k in ("p50", "p75", "p90", "p99", "p99_9", "min", "max")}
                      | {"mean": lat["mean"] / 1000, "stdev": lat["stdev"] / 1000},
        "wrk_output": result.stdout,
    }


# --- what is measured --------------------------------------------------------------------

MEASUREMENTS = {  # key: (server, path, label)
    "full_table": ("full", TABLE, "full observability /table"),
    "off_table": ("off", TABLE, "logging off /table"),
    "original_table": ("original", TABLE, "original config /table"),
    "full_static": ("full", STATIC, "full observability static app.css"),
    "original_static": ("original", STATIC, "original config static app.css"),
}

# --breakdown: where the cost of scenario 1 goes (measured, reported, not compared).
BREAKDOWN = {
    "noloki_table": ("noloki", TABLE, "JSON logs at 3 layers, no Loki /table"),
    "edge_table": ("edge", TABLE, "NGINX+uWSGI JSON logs only /table"),
}

# --outage: Loki hanging (accepts, never answers) while the app is under load.
OUTAGE = {
    "outage_table": ("outage", TABLE, "full observability, Loki hanging /table"),
}
OUTAGE_COMPARISON = {
    "id": "loki_outage", "title": "4. Loki hanging vs Loki up (full observability), /table",
    "a": "outage_table", "b": "full_table", "min_rps_ratio": 0.9, "max_p99_ratio": 1.10}

COMPARISONS = [
    {"id": "observability_cost", "title": "1. full observability vs logging off, /table",
     "a": "full_table", "b": "off_table", "min_rps_ratio": 0.95, "max_p99_ratio": 1.10},
    {"id": "stack_vs_original", "title": "2. this stack vs original config, /table",
     "a": "full_table", "b": "original_table", "min_rps_ratio": 1.5, "max_p99_ratio": None},
    {"id": "static_vs_original", "title": "3. static app.css: NGINX vs original (Flask)",
     "a": "full_static", "b": "original_static", "min_rps_ratio": 10.0, "max_p99_ratio": None},
]


def summarize(runs: list[dict]) -> dict:
    med = statistics.median
    return {
        "runs": len(runs),
        "requests_per_s": [round(r["requests_per_s"], 1) for r in runs],
        "median_requests_per_s": med(r["requests_per_s"] for r in runs),
        "median_latency_ms": {k: med(r["latency_ms"][k] for r in runs) for k in ("p50", "p90", "p99")},
        "failed_requests": sum(r["failed"] for r in runs),
        "total_requests": sum(r["requests"] for r in runs),
    }


def compare(summary: dict) -> list[dict]:
    out = []
    for c in COMPARISONS + ([OUTAGE_COMPARISON] if "outage_table" in summary else []):
        a, b = summary[c["a"]], summary[c["b"]]
        rps_ratio = a["median_requests_per_s"] / b["median_requests_per_s"]
        p99_ratio = a["median_latency_ms"]["p99"] / b["median_latency_ms"]["p99"]
        met = rps_ratio >= c["min_rps_ratio"]
        if c["max_p99_ratio"] is not None:
            met = met and p99_ratio <= c["max_p99_ratio"]
        labels = {**MEASUREMENTS, **OUTAGE}
        out.append({**c, "a_label": labels[c["a"]][2], "b_label": labels[c["b"]][2],
                    "rps_ratio": rps_ratio, "p99_ratio": p99_ratio, "goal_met": met,
                    "no_failed_requests": a["failed_requests"] == 0 and b["failed_requests"] == 0})
    return out


# --- machine -----------------------------------------------------------------------------

def _cmd_output(cmd: list[str]) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (r.stdout + r.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unknown"


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    except (OSError, AttributeError):
        pass
    nginx_v = _cmd_output([NGINX_BIN, "-v"])
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": f"{platform.system()} {platform.release()}",
        "nginx": nginx_v.split("nginx/")[-1] if "nginx/" in nginx_v else nginx_v,
        "uwsgi": _cmd_output([str(UWSGI_BIN), "--version"]),
        "python": _cmd_output([str(VENV_PYTHON), "-V"]).replace("Python ", ""),
        "wrk": (re.search(r"wrk (\S+)", _cmd_output([WRK_BIN, "-v"])) or [None, "unknown"])[1],
        "loadavg_before": os.getloadavg(),
    }


def machine_line(m: dict) -> str:
    return (f"{m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB RAM, {m['kernel']}, "
            f"nginx {m['nginx']}, uWSGI {m['uwsgi']}, Python {m['python']}, wrk {m['wrk']}")


# --- report ------------------------------------------------------------------------------

def markdown(result: dict) -> str:
    s = result["settings"]
    lines = [
        f"Machine: {machine_line(result['machine'])}; load average before/after: "
        f"{result['machine']['loadavg_before'][0]:.2f}/{result['machine']['loadavg_after'][0]:.2f}.",
        f"Load: wrk -t{s['threads']} -c{s['connections']} -d{s['duration_s']}s on loopback, "
        f"{s['rounds']} interleaved rounds, medians; {result['started_at']}.",
        "",
        "| comparison | A | B | req/s A | req/s B | req/s A/B | p99 A | p99 B | p99 A/B | goal | met |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    summ = result["summary"]
    for c in result["comparisons"]:
        a, b = summ[c["a"]], summ[c["b"]]
        goal = f"≥ {c['min_rps_ratio']:g}× req/s"
        if c["max_p99_ratio"] is not None:
            goal += f", p99 ≤ {c['max_p99_ratio']:g}×"
        met = "yes" if c["goal_met"] else "**no**"
        if not c["no_failed_requests"]:
            met += " (failed requests!)"
        lines.append(
            f"| {c['title']} | {c['a_label']} | {c['b_label']} | {a['median_requests_per_s']:.0f} | "
            f"{b['median_requests_per_s']:.0f} | **{c['rps_ratio']:.2f}×** | "
            f"{a['median_latency_ms']['p99']:.1f} ms | {b['median_latency_ms']['p99']:.1f} ms | "
            f"{c['p99_ratio']:.2f}× | {goal} | {met} |")
    lines += ["", "| measurement | req/s per round | median req/s | p50 | p90 | p99 | failed |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for key in result["settings"]["order"]:
        label = result["measurements"][key]["label"]
        x = summ[key]
        lat = x["median_latency_ms"]
        lines.append(f"| {label} | {', '.join(f'{v:.0f}' for v in x['requests_per_s'])} | "
                     f"{x['median_requests_per_s']:.0f} | {lat['p50']:.1f} ms | {lat['p90']:.1f} ms | "
                     f"{lat['p99']:.1f} ms | {x['failed_requests']} |")
    return "\n".join(lines)


# --- main --------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=parse_duration, default=parse_duration("10s"),
                   help="wrk duration of each measured run (default 10s)")
    p.add_argument("--warmup", type=parse_duration, default=parse_duration("3s"),
                   help="wrk warm-up per target before the first round, not recorded (default 3s)")
    p.add_argument("--connections", type=int, default=32, help="wrk -c (default 32)")
    p.add_argument("--threads", type=int, default=2, help="wrk -t (default 2)")
    p.add_argument("--timeout", default="5s", help="wrk --timeout (default 5s)")
    p.add_argument("--rounds", type=int, default=3,
                   help="interleaved rounds; every target is measured once per round (default 3)")
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"results JSON (default {DEFAULT_OUTPUT.relative_to(ROOT)})")
    p.add_argument("--breakdown", action="store_true",
                   help="also measure /table with JSON logs but no Loki shipping, and with only "
                        "NGINX+uWSGI logs (shows where scenario 1's cost goes; ~+1 min)")
    p.add_argument("--outage", action="store_true",
                   help="also measure /table while the app's Loki hangs (accepts, never answers) "
                        "and compare with Loki up: scenario 4 (~+1 min)")
    p.add_argument("--keep-workdir", action="store_true", help="keep the temporary dirs (logs) afterwards")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.duration < 1 or args.connections < args.threads:
        p.error("need --rounds >= 1, --duration >= 1s and --connections >= --threads")
    return args


def preflight() -> None:
    missing = [str(p) for p in (WRK_BIN, NGINX_BIN, UWSGI_BIN, STACK) if not Path(p).exists()]
    if missing:
        raise SystemExit("bench: missing " + ", ".join(missing)
                         + " (apt-get install wrk nginx; ./stack up once builds .venv)")


def _interrupt(signum, _frame):
    raise KeyboardInterrupt(signum)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    preflight()
    # SIGTERM (and SIGHUP) unwind like Ctrl-C, so the finally below stops everything.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)

    started_at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    mach = machine()
    workdir = Path(tempfile.mkdtemp(prefix="pcb-bench-"))
    sink = LokiSink(workdir)
    hanging_sink = LokiSink(workdir, hang=True) if args.outage else None
    servers = {
        "full": StackServer("full", workdir, {"LOKI_URL": sink.push_url, "LOG_LEVEL": "INFO"}),
        "off": StackServer("off", workdir, {"NGINX_ACCESS_LOG": "off", "UWSGI_DISABLE_LOGGING": "1",
                                            "LOG_LEVEL": "WARNING"}),
        "original": OriginalServer(workdir),
    }
    measurements = dict(MEASUREMENTS)
    if args.breakdown:
        servers["noloki"] = StackServer("noloki", workdir, {"LOG_LEVEL": "INFO"})
        servers["edge"] = StackServer("edge", workdir, {"LOG_LEVEL": "WARNING"})
        measurements = {"full_table": MEASUREMENTS["full_table"], **BREAKDOWN,
                        **{k: v for k, v in MEASUREMENTS.items() if k != "full_table"}}
    if args.outage:
        servers["outage"] = StackServer("outage", workdir, {"LOKI_URL": hanging_sink.push_url,
                                                            "LOG_LEVEL": "INFO"})
        measurements.update(OUTAGE)
    runs: dict[str, list[dict]] = {k: [] for k in measurements}
    total = len(measurements) * args.rounds
    interrupted = False
    error = None
    try:
        say(f"bench: work dir {workdir}")
        say("bench: starting the Loki sink")
        sink.start()
        if hanging_sink:
            hanging_sink.start()
        for name, server in servers.items():
            say(f"bench: starting '{name}' on :{server.http_port}")
            server.start()
        for key, (server, path, label) in measurements.items():
            url = servers[server].base_url + path
            status = http_status(url)
            if status != 200:
                raise RuntimeError(f"{label}: GET {url} answered {status or 'nothing'}, not 200")
            say(f"bench: warm-up {label} ({args.warmup}s)")
            run_wrk(url, args.warmup, args)
        n = 0
        for rnd in range(1, args.rounds + 1):
            for key, (server, path, label) in measurements.items():
                n += 1
                say(f"[{n}/{total}] {label} (round {rnd}) ...")
                r = run_wrk(servers[server].base_url + path, args.duration, args)
                r["round"] = rnd
                runs[key].append(r)
                say(f"        {r['requests_per_s']:.0f} req/s, p50 {r['latency_ms']['p50']:.1f} ms, "
                    f"p99 {r['latency_ms']['p99']:.1f} ms" + (f", {r['failed']} FAILED" if r["failed"] else ""))
        time.sleep(2)  # let the shipper's last batch (1 s interval) reach the sink
        sink_stats = sink.stats()
    except KeyboardInterrupt:
        interrupted = True
        say("\nbench: interrupted; stopping everything")
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
        error = str(exc)
        say(f"bench: {error}\nbench: stopping everything")
    finally:
        # a second Ctrl-C must not cut the clean-up short (children inherit the SIG_IGN,
        # so ./stack down is not interrupted either)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        for name, server in servers.items():
            try:
                server.stop()
            except Exception as exc:  # keep stopping the others
                say(f"bench: stopping '{name}' failed: {exc}")
        sink.stop()
        if hanging_sink:
            hanging_sink.stop()
        left = sweep_leftovers(workdir)
        if left:
            say(f"bench: killed leftover processes {left}")

    if interrupted or error:
        if args.keep_workdir or error:
            say(f"bench: logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        return 130 if interrupted else 1

    log_counts = {name: s.log_counts() for name, s in servers.items()}
    mach["loadavg_after"] = os.getloadavg()
    summary = {k: summarize(v) for k, v in runs.items()}
    result = {
        "started_at": started_at,
        "machine": mach,
        "settings": {"duration_s": args.duration, "warmup_s": args.warmup, "connections": args.connections,
                     "threads": args.threads, "timeout": args.timeout, "rounds": args.rounds,
                     "order": list(measurements), "breakdown": args.breakdown},
        "servers": {
            "full": {"what": "./stack: NGINX (JSON access log) + 2 uWSGI instances x 2 processes x 4 threads "
                             "(JSON request lines), app at INFO (JSON file) shipping to the local Loki sink",
                     "env": servers["full"].settings},
            "off": {"what": "./stack with logging off", "env": servers["off"].settings},
            **({"noloki": {"what": "./stack, JSON logs at all three layers, no Loki shipping",
                           "env": servers["noloki"].settings},
                "edge": {"what": "./stack, NGINX and uWSGI JSON logs, app LOG_LEVEL=WARNING, no Loki",
                         "env": servers["edge"].settings}} if args.breakdown else {}),
            **({"outage": {"what": "as 'full', but its Loki accepts pushes and never answers",
                           "env": servers["outage"].settings}} if args.outage else {}),
            "original": {"what": "uwsgi --http --master --processes 1 (no threads) + NGINX proxy_pass, "
                                 "combined text access log, uWSGI default text request log, app LOG_LEVEL=WARNING; "
                                 "Flask serves static files"},
        },
        "measurements": {k: {"server": s, "path": p, "label": l} for k, (s, p, l) in measurements.items()},
        "summary": summary,
        "comparisons": compare(summary),
        "loki_sink": sink_stats,
        "log_lines": log_counts,
        "runs": runs,
    }
    result["table_markdown"] = markdown(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    say(f"bench: results in {args.output}")
    say(f"bench: log lines written: {json.dumps(log_counts)}; Loki sink received: {json.dumps(sink_stats)}")
    if not args.keep_workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        say(f"bench: kept {workdir}")
    print(result["table_markdown"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
