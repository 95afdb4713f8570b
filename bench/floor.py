"""The physical floor of each piece of a log line's path: what it cannot cost less than.

Measured in this process's CPU time (``time.process_time``), each a loop of many calls:

- ``write(2)`` of one line to an ``O_APPEND`` file: what NGINX, uWSGI and the app each pay
  at least per request for a local line (from Python: the syscall plus ~0.1 µs of loop);
- a JSON render of the app's wide event in C (msgspec): the least a structured line costs;
- the push body per line: JSON-encoding a batch's entries in C (msgspec) and gzip level 1
  (zlib, the CPU the app spends and Loki spends again to inflate it).
"""
from __future__ import annotations

import os
import time
import zlib
from pathlib import Path

import msgspec

from .log_cost import WIDE_EVENT

#: The lines of one request as the stack writes them (lengths of real lines).
APP_LINE = msgspec.json.encode({"time": "2026-12-02T12:00:00.123456+00:00", "level": "INFO",
                                "logger": "pcbuilder.request", "layer": "app", "instance": "app1",
                                "pid": 1234, **WIDE_EVENT}).decode()


def _per_call_us(func, repeat: int) -> float:
    for _ in range(min(repeat, 1000)):
        func()
    start = time.process_time()
    for _ in range(repeat):
        func()
    return (time.process_time() - start) / repeat * 1e6


def measure(workdir: Path, repeat: int = 50000) -> dict:
    path = workdir / "floor.log"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    line = (APP_LINE + "\n").encode()
    try:
        write_us = _per_call_us(lambda: os.write(fd, line), repeat)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    event = {"time": "2026-12-02T12:00:00.123456+00:00", "level": "INFO", **WIDE_EVENT}
    render_us = _per_call_us(lambda: msgspec.json.encode(event), repeat)
    batch = [[str(1795558533267626000 + i), APP_LINE, {"request_id": WIDE_EVENT["request_id"]}]
             for i in range(250)]
    body = {"streams": [{"stream": {"service_name": "pc-builder"}, "values": batch}]}
    encoded = msgspec.json.encode(body)
    encode_us = _per_call_us(lambda: msgspec.json.encode(body), repeat // 250) / len(batch)
    gzip_us = _per_call_us(lambda: zlib.compress(encoded, 1), repeat // 250) / len(batch)
    packed = zlib.compress(encoded, 1)
    inflate_us = _per_call_us(lambda: zlib.decompress(packed), repeat // 250) / len(batch)
    return {f"write(2) of one {len(line)}-byte line (O_APPEND file)": round(write_us, 2),
            "JSON render of the wide event in C (msgspec)": round(render_us, 2),
            "push body, per line: JSON-encode in C (msgspec)": round(encode_us, 2),
            f"push body, per line: gzip level 1 (×{len(encoded) / len(packed):.0f} smaller)": round(gzip_us, 2),
            "push body, per line: inflate it again (Loki)": round(inflate_us, 2)}


if __name__ == "__main__":
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(measure(Path(tmp)), indent=2))
