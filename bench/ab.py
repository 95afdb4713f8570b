"""Two stack configurations that differ by some settings, CPU per request of each process,
in alternating rounds (A B, B A, ...), so a drift of the machine's speed during the run
falls on both alike (bench/README.md).

bench/run.py measures its configurations in a fixed order each round; on a shared machine
a layer measured just after another can look dearer or cheaper by the machine's drift. This
compares two configurations only, at a light load (wrk -c4, far from saturating the cores),
ABBA-ordered, each connection pausing between its requests so that both get about the
same request rate, and prints every round and the medians.

    .venv/bin/python -m bench.ab --a UWSGI_DISABLE_LOGGING=1 --b "" \\
        --common NGINX_ACCESS_LOG=off LOG_LEVEL=WARNING [--path /pc-builder-app/table] [--rounds 8]
    .venv/bin/python -m bench.ab --a --b LOKI_URL=SINK    # SINK: the Loki stand-in's push URL
"""
from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from .cpu import per_request_us
from .run import API_RATE
from .servers import LokiSink, StackServer, say


def settings(items: list[str]) -> dict[str, str]:
    out = {}
    for item in (i for i in items if i):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"bench.ab: '{item}' is not KEY=VALUE")
        out[key] = value
    return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.split("\n\n")[0])
    p.add_argument("--a", nargs="*", default=[], metavar="KEY=VALUE", help="settings of A")
    p.add_argument("--b", nargs="*", default=[], metavar="KEY=VALUE", help="settings of B")
    p.add_argument("--common", nargs="*", default=[], metavar="KEY=VALUE", help="settings of both")
    p.add_argument("--path", default="/pc-builder-app/api/components/1")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--seconds", type=int, default=3)
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--pause-ms", type=int, default=10,
                   help="each connection waits this long before its next request (wrk's delay() "
                        "hook; default 10): about the same rate for A and B whatever their speed, "
                        "since CPU per request grows when a slower stack idles more between "
                        "requests; 0: back to back")
    args = p.parse_args(argv)
    common = {**API_RATE, **settings(args.common)}
    work = Path(tempfile.mkdtemp(prefix="pcb-ab-"))
    sink = LokiSink(work)
    env = {name: {**common, **settings(items)} for name, items in (("A", args.a), ("B", args.b))}
    for values in env.values():
        for key, value in values.items():
            if value == "SINK":
                values[key] = sink.push_url
    servers = {name: StackServer(name.lower(), work, values) for name, values in env.items()}
    runs: dict[str, list[dict]] = {k: [] for k in servers}
    wrk = ["wrk", "-t1", f"-c{args.connections}"]
    if args.pause_ms:
        script = work / "pause.lua"
        script.write_text(f"function delay()\n  return {args.pause_ms}\nend\n")
        wrk += ["-s", str(script)]
    try:
        sink.start()
        for server in servers.values():
            server.start()
            subprocess.run(wrk + ["-d2s", server.base_url + args.path], capture_output=True, check=True)
        for rnd in range(args.rounds):
            for name in ("A", "B") if rnd % 2 == 0 else ("B", "A"):
                server = servers[name]
                before = server.cpu_snapshot()
                out = subprocess.run(wrk + [f"-d{args.seconds}s", server.base_url + args.path],
                                     capture_output=True, text=True, check=True).stdout
                after = server.cpu_snapshot()
                n = int(re.search(r"(\d+) requests in", out).group(1))
                runs[name].append({"requests": n, **per_request_us(before, after, n)})
                say(f"round {rnd + 1} {name}: {n} requests, "
                    + ", ".join(f"{k} {v:.0f}" for k, v in runs[name][-1].items() if k != "requests" and v))
    finally:
        for server in servers.values():
            server.stop()
        sink.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"µs of CPU per request, {args.path}, {args.rounds} ABBA rounds of {args.seconds}s at "
          f"wrk -c{args.connections}, {args.pause_ms} ms between a connection's requests "
          f"(medians; every round in brackets)")
    for name, label in (("A", args.a), ("B", args.b)):
        rows = runs[name]
        roles = [r for r in rows[0] if r != "requests" and any(row[r] for row in rows)]
        print(f"  {name} ({' '.join(label) or 'no settings'}): " + "; ".join(
            f"{role} {statistics.median(row[role] for row in rows):.1f} "
            f"[{', '.join(format(row[role], '.0f') for row in rows)}]" for role in roles)
              + f"; requests per round {statistics.median(row['requests'] for row in rows):.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
