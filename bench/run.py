"""Benchmarks of the PC-builder stack with wrk, on loopback (see bench/README.md).

    ./bench/run [--rounds 5 --duration 8s ...]     (= .venv/bin/python -m bench.run)

Starts the stack in several configurations side by side, each in private folders on free
ports (bench/servers.py), one layer of logging added at a time:

  off      logging off: NGINX_ACCESS_LOG=off, UWSGI_DISABLE_LOGGING=1, LOG_LEVEL=WARNING
  nginx    + NGINX's JSON access line
  uwsgi    + uWSGI's JSON request line
  file     + the app's wide event in its file (LOG_LEVEL=INFO)
  full     + the app shipping to Loki, here a stand-in answering 204 at once
           (bench/loki_sink.py): what shipping costs the app, not what Loki costs
  allin    full, with the real Loki and Alloy (./stack runs them from .tools/bin with the
           project's configs) on the same cores: what seeing costs a single host

then warms every target up and runs wrk on them in rounds (A, B, A, B, ...), so every
pair compared was measured interleaved, and reports ratios of medians against the goals
(COMPARISONS). Around every run it reads each process's CPU time from /proc
(bench/cpu.py): µs of CPU per request of NGINX, uWSGI's master and workers, the app's
sender thread, Alloy and Loki, the firm figures beside the noisy ratios, from which the
per-layer table is built. Then the freshness of every shipped layer in the real Loki
(bench/freshness.py) and the physical floors (bench/floor.py).

Two targets per configuration: /table (a page: SQLite + a template) and a cheap ordinary
request, /api/components/1 (one row as JSON), with NGINX's API rate limit raised for the
benchmark in every configuration alike (NGINX_API_RATE). Options add the earlier scenarios:
``--original`` (this stack vs the original configuration, static files), ``--outage``
(the app's Loki hanging under load), ``--trace`` (./stack trace on an hour of logs),
``--concurrency`` (uWSGI processes x threads).

Results: bench/results/latest.json (every run, the machine, the settings) and markdown
tables on stdout. Everything it starts is stopped at the end, also on Ctrl-C or errors.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from pcbuilder.settings import APP_BY_NAME
from stackctl import tools

from . import floor, freshness
from .report import compare, cpu_summary, layer_table, machine, markdown, summarize
from .servers import (BENCH, NGINX_BIN, ROOT, UWSGI_BIN, LokiSink, OriginalServer, StackServer,
                      http_status, rss_bytes, say, sweep_leftovers)
from .wrk import WRK_BIN, parse_duration, run_wrk

DEFAULT_OUTPUT = BENCH / "results" / "latest.json"
TABLE = "/pc-builder-app/table"
CHEAP = "/pc-builder-app/api/components/1"
STATIC = "/pc-builder-app/static/css/app.css"
PATHS = {"table": TABLE, "cheap": CHEAP}
#: The API's limit for the benchmark (the default, 20 requests/s per address, would answer
#: wrk with 429s); every configuration gets it, so all compare alike.
API_RATE = {"NGINX_API_RATE": "1000000r/s"}
#: One layer of logging added at a time (see the module docstring); the real Loki and
#: Alloy get the app's default push interval, not the tests' short one.
LAYERS = {
    "off": {"NGINX_ACCESS_LOG": "off", "UWSGI_DISABLE_LOGGING": "1", "LOG_LEVEL": "WARNING"},
    "nginx": {"UWSGI_DISABLE_LOGGING": "1", "LOG_LEVEL": "WARNING"},
    "uwsgi": {"LOG_LEVEL": "WARNING"},
    "file": {"LOG_LEVEL": "INFO"},
    "full": {"LOG_LEVEL": "INFO"},  # + LOKI_URL of the sink
    "allin": {"LOG_LEVEL": "INFO",
              "LOKI_BATCH_INTERVAL": APP_BY_NAME["LOKI_BATCH_INTERVAL"].default},
}
LABELS = {"off": "logging off", "nginx": "NGINX line", "uwsgi": "+ uWSGI line",
          "file": "+ app file line", "full": "full (app ships to a stand-in)",
          "allin": "all in (real Loki + Alloy)"}
# --original: this stack against the app's original configuration.
ORIGINAL = {
    "original_table": ("original", TABLE, "original config /table"),
    "full_static": ("full", STATIC, "full static app.css"),
    "original_static": ("original", STATIC, "original config static app.css"),
}
# --concurrency: the full stack with other uWSGI processes x threads per instance.
CONCURRENCY = {"p1t1": (1, 1), "p3t1": (3, 1), "p2t2": (2, 2), "p2t4": (2, 4), "p1t4": (1, 4)}
# --outage: the same stack measured with its Loki up and hanging, --outage-duration each.
OUTAGE = {
    "outage_up_table": ("outage", TABLE, "full, Loki up /table"),
    "outage_hang_table": ("outage", TABLE, "full, Loki hanging /table"),
}


def _goal(cid, title, a, b, rps, p99):
    return {"id": cid, "title": title, "a": a, "b": b, "min_rps_ratio": rps, "max_p99_ratio": p99}


COMPARISONS = [
    _goal("full_table", "1. full vs off, /table", "full_table", "off_table", 0.95, 1.10),
    _goal("full_cheap", "2. full vs off, cheap request", "full_cheap", "off_cheap", 0.85, 1.25),
    _goal("allin_table", "3. all in vs off, /table", "allin_table", "off_table", 0.90, 1.15),
    _goal("allin_cheap", "4. all in vs off, cheap request", "allin_cheap", "off_cheap", 0.75, 1.5),
    _goal("stack_vs_original", "this stack vs original config, /table", "full_table",
          "original_table", 1.7, 1.0),
    _goal("static_vs_original", "static app.css: NGINX vs original (Flask)", "full_static",
          "original_static", 15.0, None),
    _goal("loki_outage", "Loki hanging vs Loki up (full), /table", "outage_hang_table",
          "outage_up_table", 0.9, 1.10),
]


def parse_args(argv):
    p = argparse.ArgumentParser(prog="./bench/run", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=parse_duration, default=parse_duration("8s"),
                   help="wrk duration of each measured run (default 8s)")
    p.add_argument("--warmup", type=parse_duration, default=parse_duration("3s"),
                   help="wrk warm-up per target before the first round, not recorded (default 3s)")
    p.add_argument("--connections", type=int, default=32, help="wrk -c (default 32)")
    p.add_argument("--threads", type=int, default=2, help="wrk -t (default 2)")
    p.add_argument("--timeout", default="5s", help="wrk --timeout (default 5s)")
    p.add_argument("--rounds", type=int, default=5,
                   help="interleaved rounds; every target is measured once per round (default 5)")
    p.add_argument("--layers", default=",".join(LAYERS),
                   help="configurations to run, comma separated (default: all of "
                        + ", ".join(LAYERS) + "); allin needs the real Loki and Alloy")
    p.add_argument("--freshness", type=int, default=60, metavar="N",
                   help="requests whose lines are timed into the real Loki (allin; 0: skip)")
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                   help=f"results JSON (default {DEFAULT_OUTPUT.relative_to(ROOT)})")
    p.add_argument("--original", action="store_true",
                   help="also this stack vs the app's original configuration (/table, app.css)")
    p.add_argument("--concurrency", action="store_true",
                   help="also /table with other uWSGI processes x threads per instance "
                        "(" + ", ".join(CONCURRENCY) + "; the default is 2 x 1)")
    p.add_argument("--outage", action="store_true",
                   help="per round, /table with the app's Loki up, then hanging (accepts, never "
                        "answers), --outage-duration each; uWSGI memory while it hangs, and the "
                        "share of the app's lines that reach it once it is back")
    p.add_argument("--outage-duration", type=parse_duration, default=parse_duration("30s"),
                   help="how long Loki hangs per round with --outage (default 30s)")
    p.add_argument("--outage-rounds", type=int, default=3,
                   help="--outage runs in the first N rounds only (default 3)")
    p.add_argument("--trace", action="store_true",
                   help="./stack trace on one hour of logs at 100 requests/s "
                        "(bench/trace_files.py, ~0.5 GB in the temporary directory)")
    p.add_argument("--keep-workdir", action="store_true", help="keep the temporary dirs (logs) afterwards")
    args = p.parse_args(argv)
    args.layers = [name.strip() for name in args.layers.split(",") if name.strip()]
    unknown = set(args.layers) - set(LAYERS)
    if unknown:
        p.error(f"unknown --layers {', '.join(sorted(unknown))} (known: {', '.join(LAYERS)})")
    if args.rounds < 1 or args.duration < 1 or args.connections < args.threads:
        p.error("need --rounds >= 1, --duration >= 1s and --connections >= --threads")
    return args


def preflight(args) -> None:
    missing = [str(p) for p in (WRK_BIN, NGINX_BIN, UWSGI_BIN) if not Path(p).exists()]
    if missing:
        raise SystemExit("bench: missing " + ", ".join(missing)
                         + " (apt-get install wrk nginx; ./stack up once builds .venv)")
    if "allin" in args.layers:
        gone = [why for why in (tools.missing("loki"), tools.missing("alloy")) if why]
        if gone:
            raise SystemExit("bench: allin needs the real Loki and Alloy: " + "; ".join(gone)
                             + " (or leave allin out of --layers)")


def _interrupt(signum, _frame):
    raise KeyboardInterrupt(signum)


class Bench:
    """One benchmark run: its servers, what it measures, what it measured."""

    def __init__(self, args):
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="pcb-bench-"))
        self.sink = LokiSink(self.workdir)
        self.outage_sink = LokiSink(self.workdir, "loki-sink-outage", count=True) if args.outage else None
        self.servers: dict = {}
        self.measurements: dict = {}
        for name in args.layers:
            settings = {**API_RATE, **LAYERS[name]}
            if name == "full":
                settings["LOKI_URL"] = self.sink.push_url
            self.servers[name] = StackServer(name, self.workdir, settings, real=name == "allin")
            for kind, path in PATHS.items():
                self.measurements[f"{name}_{kind}"] = (name, path, f"{LABELS[name]} {path}")
        if args.original:
            self.servers["original"] = OriginalServer(self.workdir)
            if "full" not in self.servers:
                raise SystemExit("bench: --original compares with full: keep full in --layers")
            self.measurements.update(ORIGINAL)
        if args.concurrency:
            for name, (processes, threads) in CONCURRENCY.items():
                self.servers[name] = StackServer(name, self.workdir, {
                    **API_RATE, **LAYERS["full"], "LOKI_URL": self.sink.push_url,
                    "UWSGI_PROCESSES": str(processes), "UWSGI_THREADS": str(threads)})
                self.measurements[f"{name}_table"] = (
                    name, TABLE, f"full, {processes} processes x {threads} threads /table")
        if args.outage:
            self.servers["outage"] = StackServer("outage", self.workdir, {
                **API_RATE, **LAYERS["full"], "LOKI_URL": self.outage_sink.push_url})
            self.measurements.update(OUTAGE)
        self.runs: dict[str, list[dict]] = {k: [] for k in self.measurements}
        self.rss: list[dict] = []
        self.idle: dict = {}

    def sinks(self) -> list[LokiSink]:
        return [s for s in (self.sink, self.outage_sink) if s is not None]

    def start(self) -> None:
        say(f"bench: work dir {self.workdir}")
        for sink in self.sinks():
            sink.start()
        for name, server in self.servers.items():
            say(f"bench: starting '{name}'" + (" with the real Loki and Alloy" if getattr(server, "real", False) else ""))
            server.start()
        for key, (server, path, label) in self.measurements.items():
            url = self.servers[server].base_url + path
            status = http_status(url)
            if status != 200:
                raise RuntimeError(f"{label}: GET {url} answered {status or 'nothing'}, not 200")
            if key != "outage_hang_table":  # the same target as outage_up_table
                say(f"bench: warm-up {label} ({self.args.warmup}s)")
                run_wrk(url, self.args.warmup, self.args)
        self.idle = self.idle_cpu()

    def idle_cpu(self, seconds: float = 5.0) -> dict:
        """ms of CPU per second of each role of every stack while no request comes: what
        a process spends whatever the load (Loki's and Alloy's timers, the sender's wake-ups)."""
        say(f"bench: idle CPU of every stack ({seconds:g} s)")
        stacks = {n: s for n, s in self.servers.items() if isinstance(s, StackServer)}
        before = {n: s.cpu_snapshot() for n, s in stacks.items()}
        time.sleep(seconds)
        return {n: {role: round((ns - before[n].get(role, 0)) / 1e6 / seconds, 2)
                    for role, ns in s.cpu_snapshot().items()} for n, s in stacks.items()}

    def measure(self) -> None:
        plan = [(rnd, key) for rnd in range(1, self.args.rounds + 1) for key in self.measurements
                if key not in OUTAGE or rnd <= self.args.outage_rounds]
        for n, (rnd, key) in enumerate(plan, 1):
            server, path, label = self.measurements[key]
            say(f"[{n}/{len(plan)}] {label} (round {rnd}) ...")
            url = self.servers[server].base_url + path
            if key == "outage_hang_table":
                r = self.while_loki_hangs(url)
            else:
                seconds = self.args.outage_duration if key == "outage_up_table" else self.args.duration
                r = self.timed_wrk(self.servers[server], url, seconds)
            r["round"] = rnd
            self.runs[key].append(r)
            cpu_total = sum(r.get("cpu_us", {}).values())
            say(f"        {r['requests_per_s']:.0f} req/s, p50 {r['latency_ms']['p50']:.1f} ms, "
                f"p99 {r['latency_ms']['p99']:.1f} ms"
                + (f", {cpu_total:.0f} µs CPU/request in the stack" if cpu_total else "")
                + (f", {r['failed']} FAILED" if r["failed"] else ""))

    def timed_wrk(self, server, url: str, seconds: int) -> dict:
        """wrk, with every process's CPU time read before and after (bench/cpu.py)."""
        from .cpu import per_request_us

        before = server.cpu_snapshot()
        sink_before = self.sink.cpu_ns()
        wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        r = run_wrk(url, seconds, self.args)
        wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        after = server.cpu_snapshot()
        n = max(r["requests"], 1)
        if after:
            r["cpu_us"] = per_request_us(before, after, n)
        r["wrk_cpu_us"] = ((wrk_after.ru_utime + wrk_after.ru_stime)
                           - (wrk_before.ru_utime + wrk_before.ru_stime)) * 1e6 / n
        if getattr(server, "name", "") == "full":
            r["sink_cpu_us"] = (self.sink.cpu_ns() - sink_before) / 1000 / n
        return r

    def while_loki_hangs(self, url: str) -> dict:
        """wrk while the outage sink hangs; uWSGI workers' RSS sampled meanwhile."""
        server = self.servers["outage"]
        pids = server.worker_pids()
        before = rss_bytes(pids)
        peak = [before]
        done = threading.Event()

        def sample():
            while not done.wait(0.5):
                peak[0] = max(peak[0], rss_bytes(pids))

        sampler = threading.Thread(target=sample, daemon=True)
        self.outage_sink.set_mode("hang")
        sampler.start()
        try:
            result = run_wrk(url, self.args.outage_duration, self.args)
        finally:
            done.set()
            sampler.join()
            self.outage_sink.set_mode("up")
        self.rss.append({"workers": len(pids), "before": before, "peak": peak[0]})
        say(f"        uWSGI workers' RSS {before / 2**20:.1f} -> peak {peak[0] / 2**20:.1f} MiB")
        return result

    def outage_delivery(self, wait_s: float = 180) -> dict:
        """After the last hang: how many of the app's request lines reached the sink."""
        server = self.servers["outage"]
        written = server.log_counts()["app_request_finished_lines"]
        deadline = time.monotonic() + wait_s
        received = 0
        while time.monotonic() < deadline:
            received = self.outage_sink.stats().get("finished_ids", 0)
            if received >= written:
                break
            time.sleep(1)
        bound = int(APP_BY_NAME["LOKI_BACKLOG_BYTES"].default)
        workers = max(r["workers"] for r in self.rss)
        growth = max(r["peak"] - r["before"] for r in self.rss)
        return {"written": written, "received": received, "delivered_share": received / max(written, 1),
                "workers": workers, "rss_growth_bytes": growth, "rss_bound_bytes": workers * bound,
                "rss_samples": self.rss, "sink": self.outage_sink.stats()}

    def stop(self) -> None:
        # a second Ctrl-C must not cut the clean-up short (children inherit the SIG_IGN,
        # so ./stack down is not interrupted either)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        for name, server in self.servers.items():
            try:
                server.stop()
            except Exception as exc:  # keep stopping the others
                say(f"bench: stopping '{name}' failed: {exc}")
        for sink in self.sinks():
            sink.stop()
        left = sweep_leftovers(self.workdir)
        if left:
            say(f"bench: killed leftover processes {left}")

    def result(self, started_at: str, mach: dict, extra: dict) -> dict:
        args = self.args
        summary = {k: summarize(v) for k, v in self.runs.items() if v}
        labels = {k: label for k, (_s, _p, label) in self.measurements.items()}
        cpu = {k: cpu_summary(v) for k, v in self.runs.items() if v and "cpu_us" in v[0]}
        result = {
            "started_at": started_at,
            "machine": mach,
            "settings": {"duration_s": args.duration, "warmup_s": args.warmup,
                         "connections": args.connections, "threads": args.threads,
                         "timeout": args.timeout, "rounds": args.rounds, "layers": args.layers,
                         "outage_duration_s": args.outage_duration if args.outage else None,
                         "order": list(self.measurements), "concurrency": args.concurrency},
            "servers": {name: {"env": getattr(s, "settings", {})} for name, s in self.servers.items()},
            "measurements": {k: {"server": s, "path": p, "label": l}
                             for k, (s, p, l) in self.measurements.items()},
            "summary": summary,
            "comparisons": compare(summary, COMPARISONS, labels),
            "cpu_us_per_request": cpu,
            "idle_cpu_ms_per_s": self.idle,
            "layers": {kind: layer_table(cpu, kind) for kind in PATHS},
            "runs": self.runs,
            **extra,
        }
        result["table_markdown"] = markdown(result)
        return result


def trace_scenario() -> dict:
    say("bench: ./stack trace on one hour of logs (bench/trace_files.py) ...")
    out = subprocess.run([sys.executable, "-m", "bench.trace_files", "--output", os.devnull],
                         cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("bench/trace_files.py failed:\n" + out.stderr[-2000:])
    return json.loads(out.stdout)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    preflight(args)
    # SIGTERM (and SIGHUP) unwind like Ctrl-C, so the finally below stops everything.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    started_at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    t0 = time.monotonic()
    mach = machine()
    bench = Bench(args)
    extra: dict = {}
    interrupted = error = None
    try:
        bench.start()
        bench.measure()
        time.sleep(2)  # let the shipper's last batch reach the sink
        if args.outage:
            extra["outage"] = bench.outage_delivery()
        if "allin" in bench.servers and args.freshness:
            extra["freshness"] = freshness.measure(bench.servers["allin"], args.freshness)
        extra["loki_sink"] = bench.sink.stats()
        extra["log_lines"] = {name: s.log_counts() for name, s in bench.servers.items()}
        extra["floor"] = floor.measure(bench.workdir)
    except KeyboardInterrupt:
        interrupted = True
        say("\nbench: interrupted; stopping everything")
    except (RuntimeError, subprocess.SubprocessError, OSError, AssertionError) as exc:
        error = str(exc)
        say(f"bench: {error}\nbench: stopping everything")
    finally:
        bench.stop()
    if interrupted or error:
        if args.keep_workdir or error:
            say(f"bench: logs kept in {bench.workdir}")
        else:
            shutil.rmtree(bench.workdir, ignore_errors=True)
        return 130 if interrupted else 1

    if args.trace:
        extra["trace"] = trace_scenario()
    mach["loadavg_after"] = os.getloadavg()
    extra["wall_s"] = round(time.monotonic() - t0)
    result = bench.result(started_at, mach, extra)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    say(f"bench: results in {args.output} ({extra['wall_s']} s)")
    if not args.keep_workdir:
        shutil.rmtree(bench.workdir, ignore_errors=True)
    else:
        say(f"bench: kept {bench.workdir}")
    print(result["table_markdown"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
