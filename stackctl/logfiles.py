"""Reading the stack's JSON log files: which files, when each line happened, pretty lines."""
from __future__ import annotations

import json
import mmap
import re
import time
from datetime import datetime
from pathlib import Path

# Printed first, in this order; the rest follow as key=value.
_HEAD = ("layer", "instance", "event", "request_id")


def log_files(log_dir: Path) -> list[Path]:
    files = [log_dir / "nginx" / "access.log"]
    for layer in ("uwsgi", "app", "browser"):
        files += sorted((log_dir / layer).glob("*.log"))
    return [f for f in files if f.exists()]


def records_with(log_dir: Path, needle: str, ignore_case: bool = False) -> list[dict]:
    """The lines of every log file that contain ``needle`` (a request id), parsed.

    A byte-level search runs over each file first (``mmap.find``, in C, at memory
    speed) and only the lines it hits are parsed as JSON: finding one request costs
    a scan of the bytes, not a parse of every line (bench/trace_files.py measures it).
    ``ignore_case`` searches with a regular expression instead (slower; for the
    "differs only in case" hint).
    """
    target = needle.encode()
    if ignore_case:
        pattern = re.compile(re.escape(target), re.IGNORECASE)

        def find(data, start):
            m = pattern.search(data, start)
            return -1 if m is None else m.start()
    else:
        def find(data, start):
            return data.find(target, start)
    records = []
    for path in log_files(log_dir):
        with open(path, "rb") as fh:
            try:
                data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError:  # an empty file cannot be mapped
                continue
            with data:
                at = find(data, 0)
                while at != -1:
                    start = data.rfind(b"\n", 0, at) + 1
                    end = data.find(b"\n", at)
                    end = len(data) if end == -1 else end
                    record = parse(data[start:end].decode("utf-8", "replace"))
                    if record is not None:
                        records.append(record)
                    at = find(data, end)
    return records


def last_lines(path: Path, max_bytes: int | None = None) -> list[str]:
    """The complete lines among the last ``max_bytes`` of a file (all: None), newest last."""
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        start = 0 if max_bytes is None else max(0, size - max_bytes)
        fh.seek(start)
        chunk = fh.read()
    lines = chunk.split(b"\n")
    if start:
        lines = lines[1:]  # the first one is probably cut
    return [line.decode("utf-8", "replace") for line in lines if line.strip()]


def parse(line: str) -> dict | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def event_time(record: dict) -> float | None:
    """Seconds since the epoch at which the line's event happened, as its layer logs it:
    NGINX ``msec``, uWSGI ``start_us``/``time_us``, the app's and browser's ``time``
    (the app's wide event also carries a ``start_us``: its request's start, not the
    line's time)."""
    if isinstance(record.get("msec"), (int, float)):
        return float(record["msec"])
    if record.get("layer") != "uwsgi" and isinstance(record.get("time"), str):
        try:
            return datetime.fromisoformat(record["time"]).timestamp()
        except ValueError:
            return None
    for key in ("start_us", "time_us"):
        if isinstance(record.get(key), int):
            return record[key] / 1e6
    return None


def read_records(log_dir: Path) -> list[dict]:
    records = []
    for path in log_files(log_dir):
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                record = parse(line)
                if record is not None:
                    records.append(record)
    return records


def pretty(record: dict) -> str:
    t = event_time(record)
    stamp = datetime.fromtimestamp(t).strftime("%H:%M:%S.%f")[:-3] if t else "--:--:--.---"
    where = f"{record.get('layer', '?')}/{record.get('instance', '?')}"
    rest = " ".join(
        f"{k}={v}" for k, v in record.items()
        if k not in _HEAD and k not in ("time", "msec", "time_us", "level", "logger", "pid")
    )
    rid = record.get("request_id") or "-"
    return f"{stamp} {where:<14} {record.get('event', '?'):<22} {rid:<32} {rest}"


def follow(log_dir: Path, emit, stop, from_start: bool = False, interval: float = 0.3) -> None:
    """Calls ``emit(line)`` for every new line of every log file until ``stop()`` is true."""
    offsets: dict[Path, int] = {}
    if not from_start:
        offsets = {p: p.stat().st_size for p in log_files(log_dir)}
    while not stop():
        for path in log_files(log_dir):
            pos = offsets.get(path, 0)
            size = path.stat().st_size
            if size < pos:  # truncated or replaced
                pos = 0
            if size == pos:
                continue
            with open(path, "rb") as fh:
                fh.seek(pos)
                chunk = fh.read()
            complete = chunk.rfind(b"\n") + 1  # leave a half-written line for next time
            offsets[path] = pos + complete
            for raw in chunk[:complete].splitlines():
                emit(raw.decode("utf-8", "replace"))
        time.sleep(interval)
