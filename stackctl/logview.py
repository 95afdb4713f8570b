"""What ``./stack logs`` shows of the log files: which lines (filters by layer, level, status
and request id) and how each is printed (one line, its values as the file wrote them)."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

from .logfiles import Written, event_time

LAYERS = ("nginx", "uwsgi", "app", "browser")
#: Python's level names, least severe first: the app and the browser beacons log with these.
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Printed first, in this order; the rest follow as key=value.
_HEAD = ("layer", "instance", "event", "request_id")
_HIDDEN = ("time", "msec", "time_us", "level", "logger", "pid")
_STATUS = re.compile(r"([1-5])(\d\d|xx)")


def layers(raw: str) -> frozenset[str]:
    """``nginx,app``: one or more of LAYERS."""
    chosen = frozenset(part.strip() for part in raw.split(",") if part.strip())
    unknown = sorted(chosen - set(LAYERS))
    if unknown or not chosen:
        raise ValueError(f"{raw!r}: the layers are {', '.join(LAYERS)}")
    return chosen


def level(raw: str) -> int:
    """A level name (any case): lines at it or more severe."""
    try:
        return LEVELS.index(raw.strip().upper())
    except ValueError:
        raise ValueError(f"{raw!r}: the levels are {', '.join(LEVELS)}") from None


def statuses(raw: str) -> tuple[tuple[int, int], ...]:
    """``404``, ``5xx``, ``4xx,503``: ranges of HTTP status codes."""
    ranges = []
    for part in (p.strip().lower() for p in raw.split(",")):
        match = _STATUS.fullmatch(part)
        if not match:
            raise ValueError(f"{part!r} is not a status: a code (404) or a class (5xx)")
        low = int(part.replace("x", "0"))
        ranges.append((low, low + 99) if part.endswith("xx") else (low, low))
    return tuple(ranges)


@dataclass(frozen=True)
class Filter:
    """Every given condition must hold; a line lacking the field a condition asks about
    (NGINX and uWSGI write no level; uWSGI's own messages no status) does not match it."""
    layers: frozenset[str] | None = None
    min_level: int | None = None
    statuses: tuple[tuple[int, int], ...] | None = None
    request_id: str | None = None

    def __call__(self, record: dict) -> bool:
        if self.layers is not None and record.get("layer") not in self.layers:
            return False
        if self.min_level is not None:
            name = record.get("level")
            if not isinstance(name, str) or name.upper() not in LEVELS \
                    or LEVELS.index(name.upper()) < self.min_level:
                return False
        if self.statuses is not None:
            code = record.get("status")
            if isinstance(code, str) and code.isdigit():
                code = int(code)
            if isinstance(code, bool) or not isinstance(code, int) \
                    or not any(low <= code <= high for low, high in self.statuses):
                return False
        return self.request_id is None or record.get("request_id") == self.request_id


def as_written(value) -> str:
    """A value as JSON wrote it: numbers in their own digits, null, true, false; strings bare."""
    if isinstance(value, str):
        return value
    if isinstance(value, Written):
        return value.text
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def pretty(record: dict) -> str:
    t = event_time(record)
    stamp = datetime.fromtimestamp(t).strftime("%H:%M:%S.%f")[:-3] if t else "--:--:--.---"
    where = f"{as_written(record.get('layer', '?'))}/{as_written(record.get('instance', '?'))}"
    rest = " ".join(f"{k}={as_written(v)}" for k, v in record.items()
                    if k not in _HEAD and k not in _HIDDEN)
    rid = as_written(record.get("request_id") or "-")
    return f"{stamp} {where:<14} {as_written(record.get('event', '?')):<22} {rid:<32} {rest}"
