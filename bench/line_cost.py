"""Instructions per wide event in the request thread: the file line, and what shipping adds.

The request's own ``request.finished`` (structlog -> stdlib -> the file handler's one
``write(2)``, and with ``ship`` the Loki handler's append to the backlog; no push: the
sender's interval is an hour) is logged N1 and N2 times under valgrind's callgrind, with
``PYTHONHASHSEED=0`` so that the counts repeat; (N2 - N1) / difference is per line, without
start-up. Faster than bench/log_cost.py (no Flask, no request), for a change of the
logging path alone.

    .venv/bin/python -m bench.line_cost [--service DIR] [--lines 200 1200]

``--service`` measures another checkout's ``service/`` (the code before a change).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child(service: str, lines: int, mode: str) -> None:
    sys.path.insert(0, service)
    os.environ["LOKI_BATCH_INTERVAL"] = "3600"
    import structlog
    from pcbuilder.logging_config import configure_logging

    configure_logging("bench", log_file=tempfile.mkdtemp() + "/app.log", level="INFO",
                      loki_url="http://127.0.0.1:9/loki/api/v1/push" if mode == "ship" else "")
    log = structlog.get_logger("pcbuilder.request")
    for _ in range(lines):
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id="0123456789abcdef0123456789abcdef")
        log.info("request.finished", method="GET", route="/api/components/<int:component_id>",
                 path="/pc-builder-app/api/components/1", status=200, bytes=412,
                 start_us=1764686000000000, duration_ms=1.234, db_queries=1, db_ms=0.2,
                 db_rows=1, db_start_us=1764686000000100, components=1, worker=1)
    os._exit(0)  # no exit flush: only the lines are counted


def instructions(service: Path, lines: int, mode: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out", sys.executable,
             "-m", "bench.line_cost", "--child", mode, "--service", str(service), "--lines", str(lines), "0"],
            cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": "0"}, capture_output=True, text=True)
    found = re.search(r"Collected : (\d+)", out.stderr)
    if not found:
        raise SystemExit(f"callgrind failed:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.line_cost", description=__doc__.split("\n\n")[0])
    p.add_argument("--service", type=Path, default=ROOT / "service")
    p.add_argument("--lines", type=int, nargs=2, default=[200, 1200], metavar=("N1", "N2"))
    p.add_argument("--child", choices=("file", "ship"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(str(args.service), args.lines[0], args.child)
    n1, n2 = args.lines
    per = {mode: (instructions(args.service, n2, mode) - instructions(args.service, n1, mode)) / (n2 - n1)
           for mode in ("file", "ship")}
    print(f"{args.service}: file line {per['file']:,.0f} instructions per line; "
          f"shipping adds {per['ship'] - per['file']:,.0f} (the Loki handler's share)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
