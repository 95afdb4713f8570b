"""The app's fine events of one request, placed inside steps 5 to 7.

They are written at ``LOG_LEVEL=DEBUG``, or kept for a request that failed, was slow or
was sampled: then each carries ``"detail": true`` and the wide event ``request.finished``
says why (``detail: "error" | "slow" | "sampled"``) and how many were kept or dropped
(``detail_kept``, ``detail_dropped``). Without fine events a slow query still shows, as
its ``db.slow_query`` warning.
"""
from __future__ import annotations

from .. import logfiles
from .lines import RequestLines, number, seconds_from_us, to_ms

#: The step each fine event happens in; a stdlib record (log.record) in the step its time falls in.
STEP_OF = {"request.started": 5, "db.query": 6, "db.slow_query": 6, "listing.parsed": 6,
           "components.retrieved": 6, "template.rendered": 7}
#: Fields every app line carries: not part of what an event says.
COMMON = frozenset(("time", "level", "logger", "event", "pid", "layer", "instance", "request_id", "detail",
                    "traceparent", "start_us", "duration_ms", "worker"))


def describe(event: dict) -> str:
    """What one fine event says, in a few words."""
    name = event.get("event")
    if name == "request.started":
        return f"{event.get('method')} {event.get('path')}"
    if name in ("db.query", "db.slow_query"):
        rows, error = event.get("rows"), event.get("error")
        return f"{event.get('sql')}" + (f" ({rows} rows)" if rows is not None else "") + \
            (f" FAILED: {error}" if error else "")
    if name == "template.rendered":
        return f"render {event.get('template')}"
    if name == "log.record":
        error = event.get("error")
        return f"{event.get('record_level')} {event.get('logger')}: {event.get('message')}" + \
            (f" ({error})" if error else "")
    # a ``_`` key is the source's own (Loki's timestamp), not the event's
    return " ".join(f"{k}={v}" for k, v in event.items() if k not in COMMON and not k.startswith("_"))


def span(event: dict) -> tuple[float | None, float | None]:
    """(start, end) in epoch seconds; end is None for an instant. A line is written when
    its event ends: without ``start_us`` it started ``duration_ms`` before its time."""
    written = logfiles.event_time(event)
    duration = number(event.get("duration_ms"))
    start = seconds_from_us(event.get("start_us"))
    if duration is None:
        return (start if start is not None else written), None
    if start is None:
        start = None if written is None else written - duration / 1000
    return start, None if start is None else start + duration / 1000


def _step_of(event: dict, start: float | None, steps: dict) -> int:
    if event.get("event") in STEP_OF:
        return STEP_OF[event["event"]]
    for n in (7, 6):
        t = (steps.get(n) or {}).get("time")
        if start is not None and t is not None and start >= t:
            return n
    return 5


def why_kept(req: RequestLines) -> str | None:
    """``error``, ``slow``, ``sampled``; ``debug`` for fine events without ``detail: true``."""
    finished = req.finished or {}
    if finished.get("detail") in ("error", "slow", "sampled"):
        return finished["detail"]
    if req.detail and not any(r.get("detail") is True for r in req.detail):
        return "debug"
    return None


def kept_detail(req: RequestLines, steps: dict, first: float | None) -> dict:
    """Why detail was kept, the counts ``request.finished`` gives, and every fine event
    (with a ``db.slow_query`` only when no ``db.query`` was kept) in time order."""
    finished = req.finished or {}
    events = req.detail
    if not any(r.get("event") == "db.query" for r in events):
        events = sorted(events + [r for r in req.app if r.get("event") == "db.slow_query"],
                        key=lambda r: logfiles.event_time(r) or 0.0)
    out = []
    for event in events:
        start, end = span(event)
        out.append({"event": event.get("event"), "step": _step_of(event, start, steps), "start": start,
                    "end": end, "duration_ms": number(event.get("duration_ms")),
                    "offset_ms": to_ms(start - first) if start is not None and first is not None else None,
                    "text": describe(event), "kept": event.get("detail") is True})
    return {"why": why_kept(req),
            "kept": finished.get("detail_kept") if isinstance(finished.get("detail_kept"), int) else None,
            "dropped": finished.get("detail_dropped") if isinstance(finished.get("detail_dropped"), int) else None,
            "events": out}
