#!/usr/bin/env python3
"""The capacity model of the Kubernetes deployment, recomputed from measured numbers.

    .venv/bin/python -m deploy.capacity            # rewrite deploy/CAPACITY.md
    .venv/bin/python -m deploy.capacity --check    # exit 1 if CAPACITY.md is out of date
    .venv/bin/python -m deploy.capacity --measure  # measure log volume again (starts a stack)

Inputs, both under bench/results:

- ``latest.json`` (``./bench/run``): requests/s of the full stack on /table, the machine.
- ``log_volume.json`` (``--measure``): the real lines a real stack (``./stack up -d`` on
  free ports, private folders) wrote for N requests of the same page: lines and bytes per
  request per layer, the structured metadata Alloy attaches, and how small Loki's chunk
  encodings (snappy, gzip) make those lines, measured with cramjam on blocks laid out like
  Loki's.

Everything else in CAPACITY.md is arithmetic on these, written out in the file.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench" / "results" / "latest.json"
VOLUME = ROOT / "bench" / "results" / "log_volume.json"
OUT = ROOT / "deploy" / "CAPACITY.md"
LOKI_CONFIG = ROOT / "observability" / "loki" / "loki-scalable.yaml"
CHART_VALUES = ROOT / "deploy" / "helm" / "pc-builder" / "values.yaml"
LOKI_VALUES = ROOT / "deploy" / "values" / "loki.yaml"

PAGE = "/pc-builder-app/table"  # what the benchmark measures (bench/run.py full_table)
#: A browser's headers: NGINX logs user agent and referer, so lines are as long as real ones.
HEADERS = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/131.0.0.0 Safari/537.36",
    "Referer": "https://shop.example.com/pc-builder-app/main",
}
#: Structured metadata Alloy / the app attach (observability/alloy/config.alloy).
METADATA = {"nginx": ("request_id", "method", "status"), "uwsgi": ("request_id", "method", "status"),
            "app": ("request_id", "method", "status", "path"),
            "browser": ("request_id", "method", "status")}
#: Loki's default uncompressed block size inside a chunk (ingester.chunk_block_size).
BLOCK_BYTES = 262144
LAYERS = ("nginx", "uwsgi", "app")
SCALES = (1, 10, 100)
#: The model's assumption for NGINX: one pod per this many app pods (never fewer than the
#: chart's replicas). NGINX proxies a request for a small part of what the app spends on it.
APP_PODS_PER_NGINX_POD = 4


# ------------------------------------------------------------------ measuring

def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def chunk_bytes(lines: list[bytes], times_ns: list[int], codec) -> int:
    """Compressed size of one stream's entries, in Loki's layout: each entry is
    uvarint(timestamp) uvarint(length) line, blocks of BLOCK_BYTES compressed one by one."""
    total, block = 0, bytearray()
    for line, ts in zip(lines, times_ns):
        block += _uvarint(ts) + _uvarint(len(line)) + line
        if len(block) >= BLOCK_BYTES:
            total += len(codec(bytes(block)))
            block.clear()
    if block:
        total += len(codec(bytes(block)))
    return total


def _line_time_ns(layer: str, record: dict) -> int:
    if layer == "nginx":
        return int(record["msec"] * 1e9)
    if layer == "uwsgi":
        return int(record.get("start_us") or record.get("time_us")) * 1000
    return int(datetime.fromisoformat(record["time"].replace("Z", "+00:00")).timestamp() * 1e9)


def _metadata_bytes(layer: str, record: dict) -> int:
    return sum(len(k) + len(str(record[k])) for k in METADATA[layer] if record.get(k) is not None)


def measure_files(log_dir: Path, requests: int, since_ns: int = 0) -> dict:
    """Lines, bytes, metadata and compressed sizes per layer of the lines a stack wrote at
    or after ``since_ns`` (the traffic; start-up lines and readiness probes come before)."""
    import cramjam

    codecs = {"snappy": lambda b: bytes(cramjam.snappy.compress(b)),
              "gzip": lambda b: bytes(cramjam.gzip.compress(b))}
    files = {"nginx": [log_dir / "nginx" / "access.log"],
             "uwsgi": sorted((log_dir / "uwsgi").glob("*.log")),
             "app": sorted((log_dir / "app").glob("*.log"))}
    layers = {}
    for layer, paths in files.items():
        lines = n_bytes = meta = 0
        compressed = {name: 0 for name in codecs}
        for path in paths:  # one file per instance: one Loki stream each
            entries = []
            for raw in path.read_bytes().splitlines():
                if raw.strip():
                    record = json.loads(raw)
                    ts = _line_time_ns(layer, record)
                    if ts >= since_ns:
                        entries.append((raw, record, ts))
            lines += len(entries)
            n_bytes += sum(len(raw) + 1 for raw, _, _ in entries)
            meta += sum(_metadata_bytes(layer, record) for _, record, _ in entries)
            for name, codec in codecs.items():
                compressed[name] += chunk_bytes([e[0] for e in entries], [e[2] for e in entries], codec)
        layers[layer] = {"lines": lines, "bytes": n_bytes, "metadata_bytes": meta,
                         "compressed_bytes": compressed}
    return {"requests": requests, "layers": layers}


def measure(requests: int, workers: int = 8) -> dict:
    """Start a real stack on free ports, send `requests` GETs of PAGE, measure its files."""
    from tests.support.stack import start_stack, stop_stack  # run from the project root: -m

    base = Path(tempfile.mkdtemp(prefix="pcb-capacity-"))
    stack = start_stack(base)
    try:
        since_ns = time.time_ns()

        def get(_):
            req = urllib.request.Request(stack.url + PAGE, headers=HEADERS)
            with urllib.request.urlopen(req, timeout=10) as resp:
                resp.read()
                return resp.status

        with ThreadPoolExecutor(workers) as pool:
            statuses = list(pool.map(get, range(requests)))
        if set(statuses) != {200}:
            raise SystemExit(f"capacity: {PAGE} answered {sorted(set(statuses))}, not only 200")
        # Each layer writes its line after answering: wait until every request has one.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = measure_files(stack.log_dir, requests, since_ns)["layers"]
            if all(found[layer]["lines"] >= requests for layer in LAYERS):
                break
            time.sleep(0.5)
        result = measure_files(stack.log_dir, requests, since_ns)
    finally:
        stop_stack(stack)
    result.update(measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), page=PAGE,
                  headers=HEADERS, concurrency=workers,
                  how="./stack up -d on free ports (tests/support/stack.py), default settings "
                      "(LOG_LEVEL=INFO, 2 instances); only the lines written from the first request on")
    return result


# ------------------------------------------------------------------ the model

def _limits() -> dict:
    return yaml.safe_load(LOKI_CONFIG.read_text())["limits_config"]


def _retention_days(limits: dict) -> float:
    """The retention_period's default (``${LOKI_RETENTION:-720h}``) in days."""
    text = str(limits["retention_period"])
    hours = text.split(":-")[-1].rstrip("}") if ":-" in text else text
    if not hours.endswith("h"):
        raise SystemExit(f"capacity: retention_period {text!r} is not in hours")
    return float(hours[:-1]) / 24


def _size_mb(value) -> float:
    text = str(value)
    units = {"KB": 1e-3, "MB": 1, "GB": 1e3}
    for unit, factor in units.items():
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text) / 1e6


def model(bench: dict, volume: dict, chart: dict, limits: dict) -> dict:
    """Every figure of CAPACITY.md, from the two measurements (no other numbers go in)."""
    req = volume["requests"]
    per_req = {}
    for layer, m in volume["layers"].items():
        per_req[layer] = {
            "lines": m["lines"] / req,
            "bytes_per_line": m["bytes"] / m["lines"],
            "metadata_per_line": m["metadata_bytes"] / m["lines"],
            "snappy_ratio": m["bytes"] / m["compressed_bytes"]["snappy"],
            "gzip_ratio": m["bytes"] / m["compressed_bytes"]["gzip"],
        }
    full = bench["summary"]["full_table"]
    nproc = bench["machine"]["nproc"]
    per_core = full["median_requests_per_s"] / nproc
    uwsgi = chart["app"]["uwsgi"]
    pod_cores = min(uwsgi["processes"], _cores(chart["app"]["resources"]["limits"]["cpu"]))
    target = chart["app"]["autoscaling"]["targetCPUUtilizationPercentage"] / 100
    request_cores = _cores(chart["app"]["resources"]["requests"]["cpu"])
    pod_rps_at_target = per_core * request_cores * target

    rows = {}
    for scale in SCALES:
        rps = 1000 * scale
        layers = {}
        for layer, p in per_req.items():
            lines_s = rps * p["lines"]
            layers[layer] = {"lines_s": lines_s, "mb_s": lines_s * p["bytes_per_line"] / 1e6,
                             "ingest_mb_s": lines_s * (p["bytes_per_line"] + p["metadata_per_line"]) / 1e6,
                             "snappy_gb_day": lines_s * p["bytes_per_line"] / p["snappy_ratio"] * 86400 / 1e9}
        app_pods = math.ceil(rps / pod_rps_at_target)
        nginx_pods = max(chart["nginx"]["replicas"], math.ceil(app_pods / APP_PODS_PER_NGINX_POD))
        ingest = sum(l["ingest_mb_s"] for l in layers.values())
        # The busiest stream: one NGINX pod's access lines.
        stream_mb_s = layers["nginx"]["ingest_mb_s"] / nginx_pods
        rows[scale] = {
            "rps": rps, "layers": layers, "ingest_mb_s": ingest,
            "stored_gb_day": sum(l["snappy_gb_day"] for l in layers.values()),
            "app_pods": app_pods, "nginx_pods": nginx_pods,
            # service_name, env fixed; layer x instance: 1 per NGINX pod, uwsgi+app+browser per app pod
            "streams": nginx_pods + 3 * app_pods,
            "busiest_stream_mb_s": stream_mb_s,
            "ingestion_use": ingest / limits["ingestion_rate_mb"],
            "stream_use": stream_mb_s / _size_mb(limits["per_stream_rate_limit"]),
            "streams_use": (nginx_pods + 3 * app_pods) / limits["max_global_streams_per_user"],
        }
    return {"per_request": per_req, "per_core_rps": per_core, "pod_rps_at_target": pod_rps_at_target,
            "pod_cores": pod_cores, "rows": rows, "bench_run": bench["started_at"],
            "bench_machine": bench["machine"], "bench_rps": full["median_requests_per_s"],
            "bench_rounds": full["runs"],
            "bench_app_lines_per_request": _bench_app_lines(bench),
            "bench_static_rps": bench["summary"].get("full_static", {}).get("median_requests_per_s"),
            # requests/s one NGINX pod may carry before its stream hits per_stream_rate_limit
            "nginx_pod_stream_rps": _size_mb(limits["per_stream_rate_limit"]) * 1e6
            / (per_req["nginx"]["lines"] * (per_req["nginx"]["bytes_per_line"] + per_req["nginx"]["metadata_per_line"])),
            "volume_run": volume["measured_at"], "volume_requests": req}


def _cores(value) -> float:
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _bench_app_lines(bench: dict) -> float | None:
    lines = bench.get("log_lines", {}).get("full", {})
    if lines.get("app_lines") and lines.get("app_request_finished_lines"):
        return lines["app_lines"] / lines["app_request_finished_lines"]
    return None


def design_load(chart: dict, m: dict) -> float:
    """Requests/s the chart serves at most: the app HPA's maxReplicas at its CPU target."""
    return chart["app"]["autoscaling"]["maxReplicas"] * m["pod_rps_at_target"]


def required_limits(m: dict, rps: float) -> dict:
    """Loki limits for `rps` requests/s with 2x headroom on rates (bursts, replays)."""
    scale = rps / 1000
    ingest = sum(l["ingest_mb_s"] for l in m["rows"][1]["layers"].values()) * scale
    return {"ingestion_rate_mb": 2 * ingest, "ingestion_burst_size_mb": 4 * ingest}


def _fmt(x: float, digits: int = 2) -> str:
    return f"{x:,.{digits}f}"


def render(m: dict, chart: dict, limits: dict) -> str:
    p, r1, rows = m["per_request"], m["rows"][1], m["rows"]
    app = chart["app"]
    design = design_load(chart, m)
    need = required_limits(m, design)
    days = _retention_days(limits)
    write_pods = yaml.safe_load(LOKI_VALUES.read_text())["write"]["replicas"]
    out = [
        "# Capacity model (generated by `deploy/capacity.py`; edit the script, not this file)",
        "",
        "Per 1,000 requests/s of the page the benchmark measures (`GET /pc-builder-app/table`:",
        "NGINX → uWSGI → the app, one catalog query). Inputs, both measured:",
        "",
        f"- **throughput**: `bench/results/latest.json`, run of {m['bench_run']}: the full stack served "
        f"{_fmt(m['bench_rps'], 0)} requests/s (median of {m['bench_rounds']} rounds) on {m['bench_machine']['nproc']} "
        f"{m['bench_machine']['cpu_model']} cores that also ran NGINX and the load generator, so "
        f"**{_fmt(m['per_core_rps'], 0)} requests/s per core** is a floor for the app alone (this "
        "shared machine's speed varies from run to run: the same code measured 1.4 to 2.2× this "
        "on quieter runs earlier the same day, so the pod counts below err on the safe side);",
        f"- **log volume**: `bench/results/log_volume.json`, measured {m['volume_run']} "
        f"(`deploy/capacity.py --measure`): the lines a real stack (`./stack up -d`) wrote for "
        f"{m['volume_requests']:,} requests of the same page, sent with a browser's User-Agent and "
        "Referer; compressed per stream in Loki's chunk layout (entries of timestamp, length, "
        "line; 256 KiB blocks) with snappy, the encoding `loki-scalable.yaml` sets, and gzip.",
        "",
    ]
    bench_app = m["bench_app_lines_per_request"]
    if bench_app is not None and abs(bench_app - p["app"]["lines"]) > 0.05:
        out += [f"That benchmark run counted {_fmt(bench_app)} app lines per request: it predates the "
                "one-event-per-request app (contract 1). The current code writes "
                f"{_fmt(p['app']['lines'])} (log_volume.json), used here; re-run `./bench/run`, then this "
                "script, to have both from one version.", ""]
    out += [
        "## Per request and per 1,000 requests/s",
        "",
        "| layer | lines/request | bytes/line | metadata bytes/line | lines/s | MB/s (lines) | snappy ratio | gzip ratio | GB/day stored (snappy) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for layer, q in p.items():
        row = r1["layers"][layer]
        out.append(f"| {layer} | {_fmt(q['lines'])} | {_fmt(q['bytes_per_line'], 0)} | "
                   f"{_fmt(q['metadata_per_line'], 0)} | {_fmt(row['lines_s'], 0)} | {_fmt(row['mb_s'], 3)} | "
                   f"{_fmt(q['snappy_ratio'], 1)}× | {_fmt(q['gzip_ratio'], 1)}× | {_fmt(row['snappy_gb_day'])} |")
    gzip_gb = sum(r1["layers"][l]["mb_s"] / p[l]["gzip_ratio"] for l in p) * 86400 / 1e3
    out += [
        f"| **all** | | | | **{_fmt(sum(l['lines_s'] for l in r1['layers'].values()), 0)}** | "
        f"**{_fmt(sum(l['mb_s'] for l in r1['layers'].values()), 3)}** | | | **{_fmt(r1['stored_gb_day'])}** |",
        "",
        f"- **Loki ingestion**: {_fmt(r1['ingest_mb_s'], 3)} MB/s per 1,000 requests/s: line bytes plus "
        "structured metadata, which Loki's rate limits count too (since Loki 3.3).",
        f"- **Storage**: {_fmt(r1['stored_gb_day'])} GB/day after snappy, {_fmt(days * r1['stored_gb_day'], 0)} GB "
        f"over the {days:g}-day retention (`LOKI_RETENTION`, compactor). Replication factor 3 keeps three "
        "copies in the ingesters; in object storage the replicas' chunks are written once when they "
        "are cut alike and up to three times when not, so the bill is between "
        f"{_fmt(r1['stored_gb_day'])} and {_fmt(3 * r1['stored_gb_day'])} GB/day (the TSDB index is small "
        f"next to it; assumed, not measured here). gzip would store {_fmt(gzip_gb)} GB/day for more CPU "
        "per query.",
        "- Not in these figures: a page view's browser beacon is one more request (the lines above) "
        "plus one browser line; a static file is one NGINX line and no uWSGI or app line; "
        "`LOG_LEVEL=DEBUG` adds the app's per-query events.",
        "",
        "## App pods",
        "",
        f"A pod requests {app['resources']['requests']['cpu']} CPU and runs {app['uwsgi']['processes']} uWSGI "
        f"processes × {app['uwsgi']['threads']} threads; at the HPA's "
        f"{app['autoscaling']['targetCPUUtilizationPercentage']}% CPU target it serves "
        f"{_fmt(m['per_core_rps'], 0)} × {app['resources']['requests']['cpu']} × "
        f"{app['autoscaling']['targetCPUUtilizationPercentage'] / 100:g} = **{_fmt(m['pod_rps_at_target'], 0)} "
        f"requests/s**, so **{r1['app_pods']} app pods per 1,000 requests/s**. The HPA runs "
        f"{app['autoscaling']['minReplicas']} to {app['autoscaling']['maxReplicas']} pods: up to "
        f"{_fmt(design, 0)} requests/s, the chart's design load.",
    ]
    if m["bench_static_rps"]:
        out.append(f"NGINX pods: one per {APP_PODS_PER_NGINX_POD} app pods, at least the chart's "
                   f"{chart['nginx']['replicas']} (an assumption: NGINX answered "
                   f"{_fmt(m['bench_static_rps'], 0)} static requests/s in the same run, and proxying "
                   "costs it a small part of what the app spends).")
    out += [
        "",
        "## Loki limits: which binds first, and what the chart sets",
        "",
        "Labels are `service_name` and `env` (one value each), `layer` and `instance`: one stream "
        "per NGINX pod and three per app pod (uwsgi, app, browser). `request_id`, `method`, `status` "
        "and `path` are structured metadata and add no streams.",
        "",
        "| load | requests/s | app pods | NGINX pods | streams | ingestion MB/s | busiest stream MB/s (one NGINX pod) | GB/day (snappy) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scale, row in rows.items():
        out.append(f"| {scale}× | {row['rps']:,} | {row['app_pods']} | {row['nginx_pods']} | {row['streams']} | "
                   f"{_fmt(row['ingest_mb_s'])} | {_fmt(row['busiest_stream_mb_s'])} | {_fmt(row['stored_gb_day'], 1)} |")
    out += [
        "",
        "| limit (`loki-scalable.yaml`) | value | use at 1× | at 10× | at 100× |",
        "|---|---:|---:|---:|---:|",
        f"| `ingestion_rate_mb` (per tenant) | {limits['ingestion_rate_mb']} | "
        + " | ".join(f"{_fmt(100 * rows[s]['ingestion_use'], 0)}%" for s in SCALES) + " |",
        f"| `per_stream_rate_limit` | {limits['per_stream_rate_limit']} | "
        + " | ".join(f"{_fmt(100 * rows[s]['stream_use'], 0)}%" for s in SCALES) + " |",
        f"| `max_global_streams_per_user` | {limits['max_global_streams_per_user']} | "
        + " | ".join(f"{_fmt(100 * rows[s]['streams_use'], 1)}%" for s in SCALES) + " |",
        "",
        f"**The tenant ingestion rate binds first.** For the design load ({_fmt(design, 0)} requests/s), "
        f"with 2× headroom for bursts and for catching up after an outage, it must be ≥ "
        f"{_fmt(need['ingestion_rate_mb'], 1)} MB/s (burst ≥ {_fmt(need['ingestion_burst_size_mb'], 1)} MB); "
        f"the config sets {limits['ingestion_rate_mb']} and {limits['ingestion_burst_size_mb']}, and "
        "`tests/deploy/test_loki_values.py` fails when that stops being true. The limit is global: "
        f"each of the {write_pods} write pods (distributors) enforces a share, and one push (Alloy "
        f"batches up to 1 MiB) must fit in a share of the burst: "
        f"{limits['ingestion_burst_size_mb']} / {write_pods} = {_fmt(limits['ingestion_burst_size_mb'] / write_pods, 1)} MB. "
        f"The per-stream limit binds when one NGINX pod carries more than {_fmt(m['nginx_pod_stream_rps'], 0)} "
        "requests/s (its access lines are one stream); the stream count never binds at these scales.",
        "",
        "## At 10× and 100×",
        "",
        f"- **10× ({rows[10]['rps']:,} requests/s)**: {rows[10]['app_pods']} app pods (raise the HPA's "
        f"`maxReplicas` from {app['autoscaling']['maxReplicas']}); Loki takes {_fmt(rows[10]['ingest_mb_s'], 1)} MB/s, "
        f"{_fmt(100 * rows[10]['ingestion_use'], 0)}% of the configured `ingestion_rate_mb`: raise it to ≥ "
        f"{_fmt(required_limits(m, rows[10]['rps'])['ingestion_rate_mb'], 0)} (burst twice that) and add write "
        f"pods as their CPU and memory show; {_fmt(rows[10]['stored_gb_day'], 0)} GB/day reach object storage.",
        f"- **100× ({rows[100]['rps']:,} requests/s)**: {rows[100]['app_pods']} app pods; "
        f"{_fmt(rows[100]['ingest_mb_s'], 0)} MB/s into Loki and {_fmt(rows[100]['stored_gb_day'] / 1000, 1)} TB/day "
        "stored, past what the simple-scalable mode is meant for (about 1 TB/day, the Loki chart's "
        "own guidance): move to its distributed mode. Keep every NGINX pod under "
        f"{_fmt(m['nginx_pod_stream_rps'], 0)} requests/s or raise `per_stream_rate_limit`. Or cut volume "
        "at the source: NGINX's lines are the longest (user agent and referer), uWSGI's repeat what "
        "NGINX and the app already say.",
        "",
    ]
    return "\n".join(out)


def build() -> str:
    bench = json.loads(BENCH.read_text())
    volume = json.loads(VOLUME.read_text())
    chart = yaml.safe_load(CHART_VALUES.read_text())
    limits = _limits()
    return render(model(bench, volume, chart, limits), chart, limits)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--measure", type=int, nargs="?", const=3000, metavar="REQUESTS",
                        help="start a stack, send REQUESTS (default 3000), write log_volume.json")
    parser.add_argument("--check", action="store_true", help="exit 1 if CAPACITY.md is out of date")
    args = parser.parse_args(argv)
    if args.measure:
        VOLUME.write_text(json.dumps(measure(args.measure), indent=2) + "\n")
        print(f"capacity: wrote {VOLUME}")
    text = build()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"capacity: {OUT} is out of date: run .venv/bin/python -m deploy.capacity", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"capacity: wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
