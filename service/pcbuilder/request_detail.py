"""Detail on demand: a request's fine events, held in memory while it runs and written
only when the request turns out to deserve it (tail-based detail).

At ``LOG_LEVEL=INFO`` every request writes one wide event (``request.finished``). The fine
events — ``request.started``, each ``db.query``, ``listing.parsed``,
``components.retrieved``, ``template.rendered``, and a ``log.record`` for each WARNING or
plain stdlib record — go into the request's :class:`Detail` instead. When the request
ends, ``request_log`` asks :meth:`Detail.verdict`: a request that **failed** (5xx or an
unhandled exception), was **slow** (``LOG_DETAIL_SLOW_MS``) or was **sampled**
(``LOG_DETAIL_SAMPLE``) has its events written just before ``request.finished``, each with
``"detail": true`` and the time it happened; any other request drops them with the
buffer. At DEBUG, :class:`DebugDetail` writes each event at once, as the request runs.

Cheap on the path every request takes: an event is one tuple ``(event, logger, time,
fields)`` appended to a list — no structlog processors, no rendering, no clock but
``perf_counter``; start times and wall-clock times are computed from the request's start
only for a kept request. Bounded: at most ``LOG_DETAIL_MAX_EVENTS`` events and
``LOG_DETAIL_MAX_BYTES`` (estimated: a fixed share per event plus its text) per request;
what does not fit is counted (``detail_dropped``), never stored. The buffer is the
request's and goes with it (``request_log`` unsets it when the request is torn down).

No user data: statements are shapes (parameters are bound, never in the text), the
listing's decision says *whether* there was a search, not what; a ``log.record`` carries
the record's message template (``record.msg``), never its arguments.

Standard library and structlog only: ``logging_config`` installs :class:`RecordCapture`.
"""
from __future__ import annotations

import logging
import random
from contextvars import ContextVar
from dataclasses import dataclass
from time import perf_counter

import structlog

#: The buffer of the request this thread (context) is running; None outside a request.
_current: ContextVar["Detail | None"] = ContextVar("pcbuilder_detail", default=None)

#: Estimated bytes of one written event besides its text fields (time, level, logger,
#: pid, layer, instance, request_id, traceparent, detail, event, numbers).
EVENT_BYTES = 320
#: A log.record's message is cut to this many characters.
MESSAGE_CHARS = 200


@dataclass(frozen=True)
class Policy:
    """The ``LOG_DETAIL*`` settings, read once when the app is created."""
    enabled: bool = True
    slow_ms: float = 500.0
    sample: float = 0.01
    max_events: int = 200
    max_bytes: int = 64 * 1024

    @classmethod
    def from_config(cls, config) -> "Policy":
        return cls(enabled=bool(config["LOG_DETAIL"]), slow_ms=float(config["LOG_DETAIL_SLOW_MS"]),
                   sample=float(config["LOG_DETAIL_SAMPLE"]), max_events=int(config["LOG_DETAIL_MAX_EVENTS"]),
                   max_bytes=int(config["LOG_DETAIL_MAX_BYTES"]))


def current() -> "Detail | None":
    """The running request's detail (None outside a request or when detail is off)."""
    return _current.get()


def _one_line(sql: str) -> str:
    return " ".join(sql.split())  # one line in the log, whatever the source formatting


class Detail:
    """One request's fine events, kept until :meth:`write` or dropped with the request."""

    __slots__ = ("events", "size", "dropped", "max_events", "max_bytes", "start_perf", "start_us")

    def __init__(self, policy: Policy, start_perf: float, start_us: int):
        self.events: list[tuple] = []
        self.size = 0
        self.dropped = 0
        self.max_events = policy.max_events
        self.max_bytes = policy.max_bytes
        self.start_perf = start_perf
        self.start_us = start_us

    def add(self, event: str, logger: str, fields, text_chars: int = 0, at: float | None = None) -> None:
        """Keep one event that happened now or ``at`` (a ``perf_counter`` time). ``fields``:
        a dict; what :data:`_RENDER` turns into one for the event; or ``(function, *args)``,
        the function making the dict when the event is written (nothing built until then)."""
        size = EVENT_BYTES + text_chars
        if len(self.events) < self.max_events and self.size + size <= self.max_bytes:
            self.size += size
            self.events.append((event, logger, perf_counter() if at is None else at, fields))
        else:
            self.dropped += 1

    def query(self, sql: str, rows: int | None, duration_ms: float, started: float,
              error: str | None = None) -> None:
        size = EVENT_BYTES + len(sql)  # add(), inlined: one call less on every query
        if len(self.events) < self.max_events and self.size + size <= self.max_bytes:
            self.size += size
            self.events.append(("db.query", "pcbuilder.db", perf_counter(), (sql, rows, duration_ms, started, error)))
        else:
            self.dropped += 1

    def rendered(self, template: str, duration_ms: float, started: float) -> None:
        self.add("template.rendered", "pcbuilder.pages", (template, duration_ms, started), len(template))

    def verdict(self, status: int, duration_ms: float, policy: Policy) -> str | None:
        """Why this request keeps its detail: ``error``, ``slow``, ``sampled``; None: drop."""
        if status >= 500:
            return "error"
        if duration_ms >= policy.slow_ms:
            return "slow"
        if policy.sample > 0 and random.random() < policy.sample:
            return "sampled"
        return None

    def write(self, level: int = logging.INFO, detail: bool = True) -> int:
        """Write every kept event, in order, as its own line; the count written (an event
        that cannot be rendered is counted as dropped: detail must never fail the request)."""
        context = structlog.contextvars.get_contextvars()
        written = 0
        for event in self.events:
            try:
                self._emit(event, context, level, detail)
                written += 1
            except Exception:
                self.dropped += 1
        self.events = []
        return written

    def _emit(self, event: tuple, context: dict, level: int, detail: bool) -> None:
        name, logger, t, fields = event
        render = _RENDER.get(name)
        msg = {"event": name, **context}
        if detail:
            msg["detail"] = True
        if render is not None:
            fields = render(self, fields)
        elif type(fields) is tuple:
            fields = fields[0](*fields[1:])
        msg.update(fields)
        record = logging.LogRecord(logger, level, "", 0, msg, None, None)
        record.created = self.start_us / 1e6 + (t - self.start_perf)
        logging.getLogger(logger).handle(record)

    def start_us_of(self, started: float) -> int:
        return self.start_us + round((started - self.start_perf) * 1e6)


class DebugDetail(Detail):
    """At DEBUG: each event is written when it happens (no ``detail`` field, no verdict).
    A ``log.record`` is not repeated: at DEBUG the record itself is written."""

    __slots__ = ()

    def add(self, event: str, logger: str, fields, text_chars: int = 0, at: float | None = None) -> None:
        if event != "log.record":
            self._emit((event, logger, perf_counter() if at is None else at, fields),
                       structlog.contextvars.get_contextvars(), logging.DEBUG, False)

    def query(self, sql: str, rows: int | None, duration_ms: float, started: float,
              error: str | None = None) -> None:
        self.add("db.query", "pcbuilder.db", (sql, rows, duration_ms, started, error))


def _started_fields(_d: Detail, environ: dict) -> dict:
    """Method and path as Flask's ``request.method`` and ``request.path`` (werkzeug's
    decoding of the WSGI latin-1 text), from the request's environ; never the query string."""
    raw = environ.get("PATH_INFO") or ""
    path = "/" + raw.encode("latin-1", "replace").decode("utf-8", "replace").lstrip("/")
    return {"method": environ.get("REQUEST_METHOD"), "path": path}


def _query_fields(d: Detail, fields: tuple) -> dict:
    sql, rows, duration_ms, started, error = fields
    out = {"sql": _one_line(sql), "rows": rows, "duration_ms": round(duration_ms, 3),
           "start_us": d.start_us_of(started)}
    if error is not None:
        out["error"] = error
    return out


def _render_fields(d: Detail, fields: tuple) -> dict:
    template, duration_ms, started = fields
    return {"template": template, "duration_ms": round(duration_ms, 3), "start_us": d.start_us_of(started)}


def _record_fields(_d: Detail, fields: tuple) -> dict:
    record_level, message, error = fields
    out = {"record_level": record_level, "message": message}
    if error is not None:
        out["error"] = error
    return out


_RENDER = {"request.started": _started_fields, "db.query": _query_fields, "template.rendered": _render_fields, "log.record": _record_fields}


def begin(policy: Policy, debug: bool, start_perf: float, start_us: int) -> Detail | None:
    """The new request's detail: written as it goes at DEBUG, buffered when on, else None."""
    if debug:
        d = DebugDetail(policy, start_perf, start_us)
    elif policy.enabled:
        d = Detail(policy, start_perf, start_us)
    else:
        d = None
    _current.set(d)
    return d


def end() -> None:
    """The request is over: its buffer (written or not) is released."""
    _current.set(None)


class RecordCapture(logging.Handler):
    """On the root logger: a WARNING-or-worse record, or any plain stdlib record (a
    library's), emitted while a request runs becomes a ``log.record`` of its detail.

    ``handle`` is overridden (no lock, no formatting): on the path of every line, it
    costs one type check for the app's own INFO events. The message is the record's
    template (``record.msg``) or, for the app's structlog events, the event name — never
    the arguments, which may hold user data.
    """

    def handle(self, record: logging.LogRecord) -> bool:
        """The line is the record's own logger's (``logger``), at INFO, with ``record_level``."""
        msg = record.msg
        if record.levelno < logging.WARNING and type(msg) is dict:
            return False
        d = _current.get()
        if d is None:
            return False
        if type(msg) is dict:
            message = str(msg.get("event", ""))
        else:
            message = str(msg)
        message = message[:MESSAGE_CHARS]
        error = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else None
        d.add("log.record", record.name, (record.levelname, message, error), len(message))
        return False

    def emit(self, record: logging.LogRecord) -> None:  # handle() does the work
        pass
