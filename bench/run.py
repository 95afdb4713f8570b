#!/usr/bin/env python3
"""Benchmarks of the PC-builder stack with wrk, on loopback (see bench/README.md).

Starts the server configurations side by side, each in private temporary directories on
free ports (bench/servers.py):

  full      this stack (./stack up -d, its default settings): JSON logs at NGINX, uWSGI
            and the app, and the app shipping its lines to a local Loki stand-in
  off       this stack with logging off: NGINX_ACCESS_LOG=off, UWSGI_DISABLE_LOGGING=1,
            LOG_LEVEL=WARNING, no LOKI_URL
  original  the original app's configuration: one uWSGI process with --http serving
            pcbuilder.wsgi:app, behind a classic NGINX (bench/original/nginx.conf,
            proxy_pass, "combined" text access log); Flask serves the static files

then warms every target up and runs wrk on them in rounds (A, B, A, B, ...), so that
every pair compared was measured interleaved in the same run, and reports ratios of
medians against the goals (COMPARISONS below). ``--outage`` adds scenario 4 (the app's
Loki hanging under load, then back: speed, memory, lines delivered), ``--trace``
scenario 5 (bench/trace_files.py: ./stack trace on an hour of logs).

Results: bench/results/latest.json (every run, the machine, the settings) and a markdown
table on stdout. Everything it starts is stopped at the end, also on Ctrl-C or errors.
Only the standard library is used; run it as ./bench/run or .venv/bin/python bench/run.py.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import compare, machine, markdown, summarize  # noqa: E402
from servers import (BENCH, NGINX_BIN, ROOT, STACK, UWSGI_BIN, LokiSink, OriginalServer,  # noqa: E402
                     StackServer, http_status, rss_bytes, say, sweep_leftovers)
from wrk import WRK_BIN, parse_duration, run_wrk  # noqa: E402

DEFAULT_OUTPUT = BENCH / "results" / "latest.json"
TABLE = "/pc-builder-app/table"
STATIC = "/pc-builder-app/static/css/app.css"

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
# --concurrency: the full stack with other uWSGI processes x threads per instance (decision
# 3 in bench/README.md; measured, reported, not compared). The default (p2t1) is full_table.
CONCURRENCY = {"p1t1": (1, 1), "p3t1": (3, 1), "p2t2": (2, 2), "p2t4": (2, 4), "p1t4": (1, 4)}
# --outage: the same stack measured with its Loki up and hanging, --outage-duration each.
OUTAGE = {
    "outage_up_table": ("outage", TABLE, "full observability, Loki up /table"),
    "outage_hang_table": ("outage", TABLE, "full observability, Loki hanging /table"),
}
COMPARISONS = [
    {"id": "observability_cost", "title": "1. full observability vs logging off, /table",
     "a": "full_table", "b": "off_table", "min_rps_ratio": 0.95, "max_p99_ratio": 1.10},
    {"id": "stack_vs_original", "title": "2. this stack vs original config, /table",
     "a": "full_table", "b": "original_table", "min_rps_ratio": 1.7, "max_p99_ratio": 1.0},
    {"id": "static_vs_original", "title": "3. static app.css: NGINX vs original (Flask)",
     "a": "full_static", "b": "original_static", "min_rps_ratio": 15.0, "max_p99_ratio": None},
    {"id": "loki_outage", "title": "4. Loki hanging vs Loki up (full observability), /table",
     "a": "outage_hang_table", "b": "outage_up_table", "min_rps_ratio": 0.9, "max_p99_ratio": 1.10},
]


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
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                   help=f"results JSON (default {DEFAULT_OUTPUT.relative_to(ROOT)})")
    p.add_argument("--breakdown", action="store_true",
                   help="also measure /table with JSON logs but no Loki shipping, and with only "
                        "NGINX+uWSGI logs (shows where scenario 1's cost goes)")
    p.add_argument("--concurrency", action="store_true",
                   help="also measure /table with other uWSGI processes x threads per instance "
                        "(" + ", ".join(CONCURRENCY) + "; the default is 2 x 1)")
    p.add_argument("--outage", action="store_true",
                   help="scenario 4: per round, /table with the app's Loki up, then hanging (accepts, "
                        "never answers), --outage-duration each; uWSGI memory while it hangs, and "
                        "the share of the app's lines that reach it once it is back")
    p.add_argument("--outage-duration", type=parse_duration, default=parse_duration("30s"),
                   help="how long Loki hangs per round in scenario 4 (default 30s)")
    p.add_argument("--outage-rounds", type=int, default=3,
                   help="scenario 4 runs in the first N rounds only (default 3)")
    p.add_argument("--trace", action="store_true",
                   help="scenario 5: ./stack trace on one hour of logs at 100 requests/s "
                        "(bench/trace_files.py, ~0.5 GB in the temporary directory)")
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


class Bench:
    """One benchmark run: its servers, what it measures, what it measured."""

    def __init__(self, args):
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="pcb-bench-"))
        self.sink = LokiSink(self.workdir)
        self.outage_sink = LokiSink(self.workdir, "loki-sink-outage", count=True) if args.outage else None
        self.servers = {
            "full": StackServer("full", self.workdir, {"LOKI_URL": self.sink.push_url, "LOG_LEVEL": "INFO"}),
            "off": StackServer("off", self.workdir, {"NGINX_ACCESS_LOG": "off",
                                                     "UWSGI_DISABLE_LOGGING": "1", "LOG_LEVEL": "WARNING"}),
            "original": OriginalServer(self.workdir),
        }
        self.measurements = dict(MEASUREMENTS)
        if args.breakdown:
            self.servers["noloki"] = StackServer("noloki", self.workdir, {"LOG_LEVEL": "INFO"})
            self.servers["edge"] = StackServer("edge", self.workdir, {"LOG_LEVEL": "WARNING"})
            self.measurements = {"full_table": MEASUREMENTS["full_table"], **BREAKDOWN,
                                 **{k: v for k, v in MEASUREMENTS.items() if k != "full_table"}}
        if args.concurrency:
            for name, (processes, threads) in CONCURRENCY.items():
                self.servers[name] = StackServer(name, self.workdir, {
                    "LOKI_URL": self.sink.push_url, "LOG_LEVEL": "INFO",
                    "UWSGI_PROCESSES": str(processes), "UWSGI_THREADS": str(threads)})
                self.measurements[f"{name}_table"] = (
                    name, TABLE, f"full observability, {processes} processes x {threads} threads /table")
        if args.outage:
            self.servers["outage"] = StackServer("outage", self.workdir, {
                "LOKI_URL": self.outage_sink.push_url, "LOG_LEVEL": "INFO"})
            self.measurements.update(OUTAGE)
        self.runs: dict[str, list[dict]] = {k: [] for k in self.measurements}
        self.rss: list[dict] = []

    def sinks(self) -> list[LokiSink]:
        return [s for s in (self.sink, self.outage_sink) if s is not None]

    def start(self) -> None:
        say(f"bench: work dir {self.workdir}")
        for sink in self.sinks():
            sink.start()
        for name, server in self.servers.items():
            say(f"bench: starting '{name}' on :{server.http_port}")
            server.start()
        for key, (server, path, label) in self.measurements.items():
            url = self.servers[server].base_url + path
            status = http_status(url)
            if status != 200:
                raise RuntimeError(f"{label}: GET {url} answered {status or 'nothing'}, not 200")
            if key != "outage_hang_table":  # the same target as outage_up_table
                say(f"bench: warm-up {label} ({self.args.warmup}s)")
                run_wrk(url, self.args.warmup, self.args)

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
                r = run_wrk(url, seconds, self.args)
            r["round"] = rnd
            self.runs[key].append(r)
            say(f"        {r['requests_per_s']:.0f} req/s, p50 {r['latency_ms']['p50']:.1f} ms, "
                f"p99 {r['latency_ms']['p99']:.1f} ms" + (f", {r['failed']} FAILED" if r["failed"] else ""))

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
        bound = int(server.settings.get("LOKI_BACKLOG_BYTES", 16 * 2**20))
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
        summary = {k: summarize(v) for k, v in self.runs.items()}
        labels = {k: label for k, (_s, _p, label) in self.measurements.items()}
        result = {
            "started_at": started_at,
            "machine": mach,
            "settings": {"duration_s": args.duration, "warmup_s": args.warmup,
                         "connections": args.connections, "threads": args.threads,
                         "timeout": args.timeout, "rounds": args.rounds,
                         "outage_duration_s": args.outage_duration if args.outage else None,
                         "order": list(self.measurements), "breakdown": args.breakdown,
                         "concurrency": args.concurrency},
            "servers": {name: {"env": getattr(s, "settings", {})} for name, s in self.servers.items()},
            "measurements": {k: {"server": s, "path": p, "label": l}
                             for k, (s, p, l) in self.measurements.items()},
            "summary": summary,
            "comparisons": compare(summary, COMPARISONS, labels),
            "runs": self.runs,
            **extra,
        }
        result["table_markdown"] = markdown(result)
        return result


def trace_scenario() -> dict:
    say("bench: scenario 5, ./stack trace on one hour of logs (bench/trace_files.py) ...")
    out = subprocess.run([sys.executable, str(BENCH / "trace_files.py"), "--output", os.devnull],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("bench/trace_files.py failed:\n" + out.stderr[-2000:])
    return json.loads(out.stdout)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    preflight()
    # SIGTERM (and SIGHUP) unwind like Ctrl-C, so the finally below stops everything.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    started_at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    mach = machine()
    bench = Bench(args)
    extra: dict = {}
    interrupted = error = None
    try:
        bench.start()
        bench.measure()
        time.sleep(2)  # let the shipper's last batch (1 s interval) reach the sink
        if args.outage:
            extra["outage"] = bench.outage_delivery()
        extra["loki_sink"] = bench.sink.stats()
        extra["log_lines"] = {name: s.log_counts() for name, s in bench.servers.items()}
    except KeyboardInterrupt:
        interrupted = True
        say("\nbench: interrupted; stopping everything")
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
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
    result = bench.result(started_at, mach, extra)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    say(f"bench: results in {args.output}")
    say(f"bench: log lines written: {json.dumps(result['log_lines'])}; "
        f"Loki sink received: {json.dumps(result['loki_sink'])}")
    if not args.keep_workdir:
        shutil.rmtree(bench.workdir, ignore_errors=True)
    else:
        say(f"bench: kept {bench.workdir}")
    print(result["table_markdown"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
