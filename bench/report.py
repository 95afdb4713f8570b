"""The benchmark's numbers: medians, ratios against goals, the machine, the tables."""
from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
from pathlib import Path

from stackctl import tools

from .cpu import ROLES
from .servers import NGINX_BIN, UWSGI_BIN
from .wrk import WRK_BIN

VENV_PYTHON = tools.venv_dir() / "bin" / "python"


def emit(report: dict, output: Path | None) -> None:
    """Print a module's JSON report, and keep it in ``output`` when one is given."""
    text = json.dumps(report, indent=2)
    print(text)
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text + "\n")


def summarize(runs: list[dict]) -> dict:
    med = statistics.median
    return {
        "runs": len(runs),
        "requests_per_s": [round(r["requests_per_s"], 1) for r in runs],
        "median_requests_per_s": med(r["requests_per_s"] for r in runs),
        "median_latency_ms": {k: med(r["latency_ms"][k] for r in runs) for k in ("p50", "p90", "p99")},
        "p99_ms": [r["latency_ms"]["p99"] for r in runs],
        "failed_requests": sum(r["failed"] for r in runs),
        "total_requests": sum(r["requests"] for r in runs),
    }


def cpu_summary(runs: list[dict]) -> dict:
    """Median µs of CPU per request of each role (and of wrk) over a measurement's runs."""
    med = statistics.median
    out = {role: round(med(r["cpu_us"].get(role, 0.0) for r in runs), 1) for role in ROLES}
    out["stack"] = round(med(sum(r["cpu_us"].values()) for r in runs), 1)
    out["wrk"] = round(med(r["wrk_cpu_us"] for r in runs), 1)
    if "sink_cpu_us" in runs[0]:
        out["sink"] = round(med(r["sink_cpu_us"] for r in runs), 1)
    return out


#: The per-layer table: what each layer adds, in µs of CPU per request, as the difference
#: of two configurations that differ by that layer alone (same code, interleaved runs), or
#: the whole CPU of a process that only that layer runs.
LAYER_ROWS = (
    ("NGINX's JSON line", "NGINX workers", "nginx", "off", ("nginx",)),
    ("uWSGI's request line", "uWSGI master (log master) + workers", "uwsgi", "nginx",
     ("uwsgi-master", "uwsgi-worker")),
    ("the app's wide event in its file", "request thread", "file", "uwsgi", ("uwsgi-worker",)),
    ("shipping, the request thread's share", "request thread", "full", "file", ("uwsgi-worker",)),
    ("shipping, the sender thread (stand-in Loki)", "sender thread", "full", None, ("sender",)),
    ("shipping, the sender thread (real Loki)", "sender thread", "allin", None, ("sender",)),
    ("Alloy (tails NGINX's and uWSGI's files)", "Alloy", "allin", None, ("alloy",)),
    ("Loki (ingests every layer)", "Loki", "allin", None, ("loki",)),
    ("full, all of it", "the stack", "full", "off", ("stack",)),
    ("all in, all of it", "the stack, Alloy, Loki", "allin", "off", ("stack",)),
)


def layer_table(cpu: dict, kind: str) -> list[dict]:
    """LAYER_ROWS for one target (``table`` or ``cheap``), from :func:`cpu_summary`."""
    rows = []
    for title, where, config, base, roles in LAYER_ROWS:
        a, b = cpu.get(f"{config}_{kind}"), cpu.get(f"{base}_{kind}") if base else {}
        if a is None or b is None:
            continue
        us = sum(a[r] for r in roles) - sum(b.get(r, 0.0) for r in roles)
        rows.append({"layer": title, "where": where, "config": config, "base": base,
                     "us": round(us, 1)})
    return rows


def _meets(c: dict, rps_ratio: float, p99_ratio: float) -> bool:
    return rps_ratio >= c["min_rps_ratio"] and (c["max_p99_ratio"] is None or p99_ratio <= c["max_p99_ratio"])


def compare(summary: dict, comparisons: list[dict], labels: dict[str, str]) -> list[dict]:
    """Each comparison's ratios of medians (A/B) and whether its goals are met."""
    out = []
    for c in comparisons:
        if c["a"] not in summary or c["b"] not in summary:
            continue
        a, b = summary[c["a"]], summary[c["b"]]
        rps_ratio = a["median_requests_per_s"] / b["median_requests_per_s"]
        p99_ratio = a["median_latency_ms"]["p99"] / b["median_latency_ms"]["p99"]
        # The same ratios round by round (A and B ran one after the other in each): their
        # spread is the machine's noise, against which a verdict on medians is read.
        rounds = [(ra / rb, pa / pb) for ra, rb, pa, pb in
                  zip(a["requests_per_s"], b["requests_per_s"], a["p99_ms"], b["p99_ms"])]
        out.append({**c, "a_label": labels[c["a"]], "b_label": labels[c["b"]],
                    "rps_ratio": rps_ratio, "p99_ratio": p99_ratio,
                    "goal_met": _meets(c, rps_ratio, p99_ratio),
                    "round_rps_ratios": [round(r, 3) for r, _ in rounds],
                    "rounds_meeting_goal": sum(_meets(c, r, p) for r, p in rounds),
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

def rounds_cell(c: dict) -> str:
    ratios = c.get("round_rps_ratios") or []
    if not ratios:
        return ""
    return (f"{c['rounds_meeting_goal']}/{len(ratios)} ({min(ratios):.2f}-{max(ratios):.2f}×)")


def markdown(result: dict) -> str:
    s = result["settings"]
    lines = [
        f"Machine: {machine_line(result['machine'])}; load average before/after: "
        f"{result['machine']['loadavg_before'][0]:.2f}/{result['machine']['loadavg_after'][0]:.2f}.",
        f"Load: wrk -t{s['threads']} -c{s['connections']} -d{s['duration_s']}s on loopback, "
        f"{s['rounds']} interleaved rounds, medians; {result['started_at']}.",
        "",
        "| comparison | A | B | req/s A | req/s B | req/s A/B | p99 A | p99 B | p99 A/B | goal | met "
        "| rounds that meet it (req/s A/B each round) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|---|---|",
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
            f"{c['p99_ratio']:.2f}× | {goal} | {met} | {rounds_cell(c)} |")
    lines += extra_rows(result)
    lines += cpu_tables(result)
    lines += freshness_table(result)
    lines += floor_table(result)
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




def extra_rows(result: dict) -> list[str]:
    """Scenario 4's memory and delivery, scenario 5's trace time: goals beyond ratios."""
    rows = []
    outage = result.get("outage")
    if outage:
        met = outage["rss_growth_bytes"] <= outage["rss_bound_bytes"]
        rows.append(f"| 4b. uWSGI RSS growth while Loki hangs | {outage['workers']} workers | bound: "
                    f"{outage['workers']} × LOKI_BACKLOG_BYTES | {outage['rss_growth_bytes'] / 2**20:.1f} MiB | "
                    f"{outage['rss_bound_bytes'] / 2**20:.0f} MiB | | | | | within the bound | "
                    f"{'yes' if met else '**no**'} |")
        d = outage["delivered_share"]
        rows.append(f"| 4c. app lines in Loki after it is back | {outage['received']} received | "
                    f"{outage['written']} written | | | **{d * 100:.2f} %** | | | | ≥ 99.9 % | "
                    f"{'yes' if d >= 0.999 else '**no**'} |")
    trace = result.get("trace")
    if trace:
        worst = max(trace["seconds"][k] for k in ("trace oldest", "trace middle", "trace newest"))
        rows.append(f"| 5. ./stack trace ID from files, 1 h at 100 req/s ({trace['lines']} lines, "
                    f"{trace['bytes'] / 1e6:.0f} MB) | slowest of oldest/middle/newest id | | | | "
                    f"**{worst:.2f} s** | | | | < 1 s | {'yes' if worst < 1 else '**no**'} |")
    return rows


def cpu_tables(result: dict) -> list[str]:
    cpu = result.get("cpu_us_per_request") or {}
    if not cpu:
        return []
    roles = [r for r in ROLES if any(v.get(r) for v in cpu.values())]
    lines = ["", "µs of CPU per request, by process (medians over the rounds; /proc schedstat):", "",
             "| measurement | " + " | ".join(roles) + " | stack | wrk |",
             "|---|" + "---:|" * (len(roles) + 2)]
    for key, v in cpu.items():
        label = result["measurements"][key]["label"]
        lines.append(f"| {label} | " + " | ".join(f"{v[r]:.1f}" for r in roles)
                     + f" | **{v['stack']:.1f}** | {v['wrk']:.1f} |")
    idle = result.get("idle_cpu_ms_per_s") or {}
    if idle:
        lines += ["", "Idle, ms of CPU per second (no requests, 5 s):", "",
                  "| configuration | " + " | ".join(roles) + " |", "|---|" + "---:|" * len(roles)]
        lines += [f"| {name} | " + " | ".join(f"{v.get(r, 0):.1f}" for r in roles) + " |"
                  for name, v in idle.items()]
    layers = result.get("layers") or {}
    kinds = [k for k in layers if layers[k]]
    if kinds:
        lines += ["", "What each layer costs, µs of CPU per request (difference of the two "
                  "configurations named, or the whole process):", "",
                  "| layer | where | configurations | " + " | ".join(kinds) + " |",
                  "|---|---|---|" + "---:|" * len(kinds)]
        by_title = {}
        for kind in kinds:
            for row in layers[kind]:
                by_title.setdefault((row["layer"], row["where"], row["config"], row["base"]), {})[kind] = row["us"]
        for (title, where, config, base), values in by_title.items():
            configs = f"{config} − {base}" if base else config
            lines.append(f"| {title} | {where} | {configs} | "
                         + " | ".join(f"{values[k]:.1f}" if k in values else "" for k in kinds) + " |")
    return lines


def freshness_table(result: dict) -> list[str]:
    fresh = result.get("freshness")
    if not fresh:
        return []
    bounded = any("lower_p95_s" in v for v in fresh["layers"].values())  # not in runs before 2026-12-07
    how = ("; to the end of the first query that returned the line, the start of the last that missed it "
           "in brackets" if bounded else "")
    lines = ["", f"Freshness, response → queryable in the real Loki ({fresh['requests']} requests, "
             f"{fresh['rate']:g}/s, Loki polled every {fresh['poll_s']:g} s, under wrk -c{fresh['load_connections']} "
             f"on /table{how}):", "",
             "| layer | seen | p50 | p95 | max | goal p95 ≤ 1 s |", "|---|---:|---:|---:|---:|---|"]
    for layer, v in fresh["layers"].items():
        met = "yes" if v["seen"] == v["sent"] and v["p95_s"] <= 1.0 else "**no**"
        lower = f" ({v['lower_p95_s']:.2f} s)" if "lower_p95_s" in v else ""
        lines.append(f"| {layer} | {v['seen']}/{v['sent']} | {v['p50_s']:.2f} s | "
                     f"{v['p95_s']:.2f} s{lower} | {v['max_s']:.2f} s | {met} |")
    q = fresh.get("queries", {})
    if q.get("count"):
        lines += ["", f"A query started every {fresh['poll_s']:g} s whatever the last one took; each of the "
                  f"{q['count']} took p50 {q['p50_s']:.2f} s, p95 {q['p95_s']:.2f} s, max {q['max_s']:.2f} s."]
    return lines


def floor_table(result: dict) -> list[str]:
    floor = result.get("floor")
    if not floor:
        return []
    lines = ["", "Physical floors, µs of CPU (bench/floor.py):", "", "| what | µs |", "|---|---:|"]
    lines += [f"| {name} | {us:.2f} |" for name, us in floor.items()]
    return lines
