"""Reading the stack's JSON log files: which files, when each line happened, new lines in
time order (what ``./stack logs`` prints of them: stackctl/logview.py)."""
from __future__ import annotations

import heapq
import json
import mmap
import re
import time
from datetime import datetime
from pathlib import Path


class Written(float):
    """A JSON number with the text the line wrote it as: a float to compute with, printed
    as written (``17.200000001117587`` stays that, ``1e-07`` is not turned into ``1e-07.0``)."""

    __slots__ = ("text",)

    def __new__(cls, text: str):
        number = super().__new__(cls, text)
        number.text = text
        return number


_DECODER = json.JSONDecoder(parse_float=Written)


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
        record = _DECODER.decode(line)
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


def end_offsets(log_dir: Path) -> dict[Path, int]:
    """Where each log file ends now: what ``history`` reads up to and ``follow`` starts at."""
    offsets = {}
    for path in log_files(log_dir):
        try:
            offsets[path] = path.stat().st_size
        except FileNotFoundError:  # rotated away since the listing
            pass
    return offsets


def history(offsets: dict[Path, int]) -> list[str]:
    """Every complete line of the files up to their offsets."""
    lines = []
    for path, end in offsets.items():
        try:
            with open(path, "rb") as fh:
                chunk = fh.read(end)
        except FileNotFoundError:
            continue
        lines += chunk[:chunk.rfind(b"\n") + 1].decode("utf-8", "replace").splitlines()
    return lines


def read_records(log_dir: Path) -> list[dict]:
    return [r for r in map(parse, history(end_offsets(log_dir))) if r is not None]


def follow(log_dir: Path, emit, stop, offsets: dict[Path, int] | None = None,
           interval: float = 0.3, hold: float = 1.0, clock=time.time) -> None:
    """Calls ``emit(line)`` for every line the log files get past ``offsets`` (default: their
    ends now) until ``stop()`` is true, the lines of all files merged in the order of the time
    their layers logged (``event_time``): each waits ``hold`` seconds past that time for lines
    of other files logged before it, then goes. One that comes later than that (uWSGI's line
    of a long request carries its start) goes at once; a line with no time goes on arrival."""
    offsets = end_offsets(log_dir) if offsets is None else dict(offsets)
    waiting: list[tuple[float, int, str]] = []  # a heap, earliest first
    arrived = 0
    while True:
        stopping = stop()
        for line in _new_lines(log_dir, offsets):
            record = parse(line)
            at = (event_time(record) if record else None) or clock()
            heapq.heappush(waiting, (at, arrived, line))
            arrived += 1
        due = float("inf") if stopping else clock() - hold
        while waiting and waiting[0][0] <= due:
            emit(heapq.heappop(waiting)[2])
        if stopping:
            return
        time.sleep(interval)


def _new_lines(log_dir: Path, offsets: dict[Path, int]) -> list[str]:
    """The complete lines each file got past its offset (moved on); a file that shrank was
    replaced (rotated) and is read from its start."""
    lines = []
    for path in log_files(log_dir):
        pos = offsets.get(path, 0)
        try:
            size = path.stat().st_size
        except FileNotFoundError:  # rotated away between the listing and now
            continue
        if size < pos:
            pos = 0
        if size == pos:
            continue
        with open(path, "rb") as fh:
            fh.seek(pos)
            chunk = fh.read(size - pos)
        complete = chunk.rfind(b"\n") + 1  # leave a half-written line for next time
        offsets[path] = pos + complete
        lines += chunk[:complete].decode("utf-8", "replace").splitlines()
    return lines
