"""Ships the app's log records to Loki with loki-logger-handler, off the request path.

loki-logger-handler 1.1.2 does the Loki side (labels, structured metadata, streams,
gzip, the push request); this module wraps it where it falls short for a forked,
threaded uWSGI app:

========================================  ===============================================
loki-logger-handler 1.1.2 as shipped       what this module does about it
========================================  ===============================================
sender thread started in ``__init__``      the handler is built (and its thread started)
(dead in workers forked after app load)    after fork, in every uWSGI worker (postfork)
unbounded ``queue.Queue`` buffer           request threads only ``put_nowait`` into a
                                           bounded queue; when full the line is dropped
                                           and counted; the listener keeps the handler's
                                           own buffer under the same bound (back-pressure)
HTTP post without a timeout                its ``requests.Session`` gets a default timeout
failed post loses the batch silently       failures and lost lines are counted and reported
one non-JSON value loses the whole batch   the line is the app's JSON line re-parsed, so
                                           every value is JSON already (unknown -> str)
``timestamp`` from the line, else flush    the entry's timestamp is ``record.created`` in ns
time                                       (the line's own ``time`` field, to the us)
``buffer.empty()`` then blocking ``get``   batches are taken with ``get_nowait`` (no hang
(two flushers can hang one another)        when the atexit flush races the sender thread)
========================================  ===============================================

Every pushed line is the same JSON object as the local file line (same field names);
labels are only ``service_name``, ``layer``, ``instance`` and ``env`` (low cardinality);
``request_id`` and, where the event has them, ``method``, ``path`` and ``status`` travel
as Loki *structured metadata* (never labels). The local JSON log is unchanged.

Counters are reported in the LOCAL log only (logger ``pcbuilder.loki``, which is never
shipped): ``loki.dropped`` (queue full: ``dropped`` since the last report and
``dropped_total``) and ``loki.send_failed`` (``failed_batches``, ``lost_lines``, their
totals and the last ``error``), at most every ``LOKI_REPORT_INTERVAL`` seconds and once
more at shutdown.

Settings (environment):

``LOKI_URL``              push endpoint, e.g. ``http://loki:3100/loki/api/v1/push``;
                          unset or empty: shipping is off.
``LOKI_QUEUE_SIZE``       bound of the record queue, and of the handler's own buffer
                          (default 10000 each).
``LOKI_BATCH_INTERVAL``   seconds between pushes (default 1.0).
``LOKI_BATCH_SIZE``       most lines per push (default 1000).
``LOKI_TIMEOUT``          seconds for one HTTP push, connect and read (default 5.0).
``LOKI_SHUTDOWN_TIMEOUT`` seconds the exit flush may take at most (default 5.0).
``LOKI_REPORT_INTERVAL``  seconds between drop/failure reports (default 10.0).
``STACK_ENV``             value of the ``env`` label (default ``local``).

Fork model: under uWSGI (master loads the app, then forks workers) nothing is started
in the master; a post-fork hook starts the listener and the loki-logger-handler sender
in each worker. Lines the master logs before the fork (start-up) stay in the local log
only. Outside uWSGI (tests, ``flask run``) shipping starts at configure time. Shutdown
(``atexit`` and ``uwsgi.atexit``) drains what is queued and pushes it, within
``LOKI_SHUTDOWN_TIMEOUT``.
"""
from __future__ import annotations

import atexit
import copy
import json
import logging
import logging.handlers
import os
import queue
import threading
import time
import traceback
from dataclasses import dataclass, field

import requests
from loki_logger_handler.formatters.logger_formatter import LoggerFormatter
from loki_logger_handler.loki_logger_handler import LokiLoggerHandler
from loki_logger_handler.stream import Stream
from loki_logger_handler.streams import Streams

SERVICE_NAME = "pc-builder"
#: Event fields that also go to Loki as structured metadata (never as labels).
METADATA_KEYS = ("request_id", "method", "path", "status")
#: Logger of this module's own reports: written locally, never shipped (no feedback loop).
REPORT_LOGGER = "pcbuilder.loki"
#: Loggers never shipped: our reports and the library's own error logger.
_NOT_SHIPPED = (REPORT_LOGGER, "LokiHandlerDebug")
_THREAD_PREFIX = "loki-"
#: How often the listener looks for new records when its queue is empty (seconds).
POLL_INTERVAL = 0.05

report_log = logging.getLogger(REPORT_LOGGER)


def _float(env, name: str, default: float) -> float:
    try:
        value = float(env.get(name, "") or default)
    except ValueError:
        return default
    return value if value > 0 else default


@dataclass
class LokiSettings:
    url: str
    instance: str
    env: str = "local"
    queue_size: int = 10000
    batch_interval: float = 1.0
    batch_size: int = 1000
    timeout: float = 5.0
    shutdown_timeout: float = 5.0
    report_interval: float = 10.0

    @classmethod
    def from_env(cls, instance: str, url: str | None = None, stack_env: str | None = None,
                 environ=None) -> "LokiSettings":
        e = os.environ if environ is None else environ
        return cls(
            url=(e.get("LOKI_URL", "") if url is None else url).strip(),
            instance=instance,
            env=(stack_env if stack_env is not None else e.get("STACK_ENV", "")).strip() or "local",
            queue_size=int(_float(e, "LOKI_QUEUE_SIZE", 10000)),
            batch_interval=_float(e, "LOKI_BATCH_INTERVAL", 1.0),
            batch_size=int(_float(e, "LOKI_BATCH_SIZE", 1000)),
            timeout=_float(e, "LOKI_TIMEOUT", 5.0),
            shutdown_timeout=_float(e, "LOKI_SHUTDOWN_TIMEOUT", 5.0),
            report_interval=_float(e, "LOKI_REPORT_INTERVAL", 10.0),
        )

    @property
    def labels(self) -> dict[str, str]:
        return {"service_name": SERVICE_NAME, "layer": "app", "instance": self.instance,
                "env": self.env}


@dataclass
class ShippingStats:
    """Counters shared by request threads, the listener and the sender (under a lock)."""
    dropped: int = 0
    sent_lines: int = 0
    sent_batches: int = 0
    failed_batches: int = 0
    lost_lines: int = 0
    last_error: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **deltas) -> None:
        with self.lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def snapshot(self) -> dict:
        with self.lock:
            return {k: getattr(self, k) for k in
                    ("dropped", "sent_lines", "sent_batches", "failed_batches", "lost_lines",
                     "last_error")}


class DroppingQueueHandler(logging.handlers.QueueHandler):
    """The only Loki code on the request thread: snapshot the record, ``put_nowait``.

    A full queue drops the record and counts it; nothing here can block or raise.
    """

    def __init__(self, q: queue.Queue, stats: ShippingStats):
        super().__init__(q)
        self.stats = stats
        self.addFilter(_not_shipping_itself)

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if "_stack_line" in record.__dict__:
            # The local handler already rendered the line (logging_config.LineFormatter),
            # which is all the listener will read: no copy needed.
            return record
        # Keep every field (they are the JSON line); render what only this thread can:
        # the message with its args and the traceback of the exception being handled.
        record = copy.copy(record)
        record.msg = record.getMessage()
        record.args = None
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_info = None
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.stats.add(dropped=1)


def _not_shipping_itself(record: logging.LogRecord) -> bool:
    """Never ship our own reports, nor anything logged on the shipping threads (e.g.
    urllib3 while posting): a Loki outage must not feed more lines into the Loki queue."""
    if record.name.startswith(_NOT_SHIPPED):
        return False
    return not (record.threadName or "").startswith(_THREAD_PREFIX)


class LokiLineFormatter(LoggerFormatter):
    """loki-logger-handler's formatter interface (``format -> (line, metadata)``) producing
    the app's own JSON line, so both destinations carry identical fields.

    The line is the local formatter's JSON re-parsed: every value is JSON-serialisable
    (python-json-logger turns unknown objects into strings), so one odd value can never
    make the library's ``json.dumps`` of the batch fail.
    """

    def __init__(self, line_formatter: logging.Formatter):
        super().__init__()
        self.line_formatter = line_formatter

    def format(self, record: logging.LogRecord):
        try:
            line = json.loads(self.line_formatter.format(record))
        except Exception as exc:  # keep the line, whatever went wrong
            line = {"event": str(record.msg), "level": record.levelname, "logger": record.name,
                    "format_error": f"{type(exc).__name__}: {exc}"}
        metadata = {k: str(line[k]) for k in METADATA_KEYS if line.get(k) is not None}
        return _TimedLine(line, _ns(record.created)), metadata


def _ns(created: float) -> int:
    # Rounded to the microsecond like the line's "time" field, so the two agree exactly.
    return round(created * 1_000_000) * 1000


class _TimedLine(dict):
    """The JSON line plus the record's creation time, which stays out of the line."""

    __slots__ = ("ts_ns",)

    def __init__(self, line: dict, ts_ns: int):
        super().__init__(line)
        self.ts_ns = ts_ns


class _TimeoutSession(requests.Session):
    """The library posts with ``session.post(...)`` and no timeout: give it one."""

    def __init__(self, timeout: float):
        super().__init__()
        self.default_timeout = timeout
        # LOKI_URL is the whole address: no proxy/netrc lookups from the environment,
        # which requests would otherwise redo on every post.
        self.trust_env = False

    def request(self, *args, **kwargs):
        kwargs.setdefault("timeout", self.default_timeout)
        return super().request(*args, **kwargs)


class BoundedLokiHandler(LokiLoggerHandler):
    """loki-logger-handler with a post timeout, bounded batches, counted failures and
    entry timestamps from ``record.created``. Construct it only where its sender thread
    should live (after fork)."""

    def __init__(self, settings: LokiSettings, stats: ShippingStats,
                 line_formatter: logging.Formatter):
        super().__init__(
            url=settings.url,
            labels=settings.labels,
            timeout=settings.batch_interval,  # the library's flush interval
            compressed=True,
            default_formatter=LokiLineFormatter(line_formatter),
            enable_structured_loki_metadata=True,
            loki_metadata_keys=[],  # metadata comes from the formatter; the line keeps it
        )
        self.flush_thread.name = _THREAD_PREFIX + "sender"
        self.request.session = _TimeoutSession(settings.timeout)
        self.batch_size = settings.batch_size
        self.post_timeout = settings.timeout
        self.shutdown_timeout = settings.shutdown_timeout
        self.stats = stats
        self.closed = False
        self._send_lock = threading.Lock()

    def handle_unexpected_error(self, e):
        self.error = True
        with self.stats.lock:
            self.stats.last_error = f"{type(e).__name__}: {e}"[:500]

    def _send(self, deadline: float | None = None) -> None:
        """Push everything buffered, ``batch_size`` lines per request.

        Replaces the library's ``_send`` loop (``empty()`` then a blocking ``get()``,
        one unbounded batch, failures forgotten) but builds the request with its own
        ``Stream``/``Streams``/``LokiRequest``. Called without a deadline from anywhere
        but the sender thread (the library's own ``atexit`` hook), it gets the shutdown
        deadline, so an exit never waits on a hanging Loki for longer than that.
        """
        if self.closed:
            return
        if deadline is None and threading.current_thread() is not self.flush_thread:
            deadline = time.monotonic() + self.shutdown_timeout
        if not self._send_lock.acquire(timeout=-1 if deadline is None
                                       else max(0.0, deadline - time.monotonic())):
            return
        try:
            # Only what is buffered now: lines arriving meanwhile wait for the next
            # interval instead of turning one flush into many small posts.
            pending = self.buffer.qsize()
            while pending > 0 and not self.closed:
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    self.request.session.default_timeout = min(self.post_timeout, left)
                batch = []
                while len(batch) < min(self.batch_size, pending):
                    try:
                        batch.append(self.buffer.get_nowait())
                    except queue.Empty:
                        break
                if not batch:
                    return
                pending -= len(batch)
                self._post(batch)
        finally:
            self.request.session.default_timeout = self.post_timeout
            self._send_lock.release()

    def _post(self, batch) -> None:
        streams: dict[str, Stream] = {}
        for log in batch:
            stream = streams.get(log.key)
            if stream is None:
                stream = streams[log.key] = Stream(log.labels, self.loki_metadata,
                                                   self.message_in_json_format)
            stream.append_value(log.line, log.loki_metadata)
            ts_ns = getattr(log.line, "ts_ns", None)
            if ts_ns is not None:
                stream.values[-1][0] = str(ts_ns)
        try:
            self.request.send(Streams(list(streams.values())).serialize())
        except Exception as exc:  # requests errors, and anything else: count, go on
            self.handle_unexpected_error(exc)
            self.stats.add(failed_batches=1, lost_lines=len(batch))
        else:
            self.stats.add(sent_batches=1, sent_lines=len(batch))


class LokiListener(logging.handlers.QueueListener):
    """Drains the bounded queue into the loki-logger-handler on its own thread.

    It moves a record only while the handler's buffer holds fewer than ``limit`` lines
    (back-pressure): with Loki slow or hanging, the bounded queue fills and the request
    threads drop, instead of the library's unbounded buffer growing. It also writes the
    drop/failure reports to the local log.
    """

    def __init__(self, q: queue.Queue, handler: BoundedLokiHandler, limit: int,
                 stats: ShippingStats, report_interval: float):
        super().__init__(q, handler, respect_handler_level=False)
        self.loki = handler
        self.limit = limit
        self.stats = stats
        self.report_interval = report_interval
        self.stopping = threading.Event()
        self._next_report = time.monotonic() + report_interval
        self._reported = {"dropped": 0, "failed_batches": 0, "lost_lines": 0}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._monitor, name=_THREAD_PREFIX + "listener",
                                        daemon=True)
        self._thread.start()

    def _monitor(self) -> None:
        # QueueListener's loop, minus task_done() (nobody joins this queue) and with a
        # sentinel that dequeue() returns, rather than one put into a possibly full queue.
        while True:
            record = self.dequeue(True)
            if record is self._sentinel:
                return
            try:
                self.handle(record)
            except Exception:  # a bad record must not end shipping for this process
                self.stats.add(lost_lines=1)

    def dequeue(self, block: bool):
        # Poll rather than block: a blocked get() is woken by every put, i.e. a thread
        # switch (and a GIL hand-over) per log line on the request path.
        while True:
            try:
                return self.queue.get_nowait()
            except queue.Empty:
                if self.stopping.is_set():
                    return self._sentinel
                self.maybe_report()
                time.sleep(POLL_INTERVAL)

    def handle(self, record: logging.LogRecord) -> None:
        while self.loki.buffer.qsize() >= self.limit and not self.stopping.is_set():
            self.maybe_report()
            self.stopping.wait(0.05)
        self.loki.handle(record)
        self.maybe_report()

    def maybe_report(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next_report:
            return
        self._next_report = now + self.report_interval
        s = self.stats.snapshot()
        dropped = s["dropped"] - self._reported["dropped"]
        failed = s["failed_batches"] - self._reported["failed_batches"]
        lost = s["lost_lines"] - self._reported["lost_lines"]
        self._reported.update(dropped=s["dropped"], failed_batches=s["failed_batches"],
                              lost_lines=s["lost_lines"])
        if dropped:
            report_log.warning("loki.dropped", extra={
                "dropped": dropped, "dropped_total": s["dropped"],
                "queue_size": self.queue.maxsize})
        if failed or lost:
            report_log.warning("loki.send_failed", extra={
                "failed_batches": failed, "lost_lines": lost,
                "failed_batches_total": s["failed_batches"], "lost_lines_total": s["lost_lines"],
                "error": s["last_error"]})

    def stop_within(self, deadline: float) -> None:
        """Stop taking new records, hand every queued one to the handler, then return.

        Unlike ``QueueListener.stop`` it never blocks on a full queue nor waits forever.
        """
        self.stopping.set()
        thread = self._thread
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
            self._thread = None


class LokiShipper:
    """One process's shipping: bounded queue -> listener thread -> loki-logger-handler."""

    def __init__(self, settings: LokiSettings, line_formatter: logging.Formatter):
        self.settings = settings
        self.line_formatter = line_formatter
        self.stats = ShippingStats()
        self.queue: queue.Queue = queue.Queue(maxsize=settings.queue_size)
        self.queue_handler = DroppingQueueHandler(self.queue, self.stats)
        self.queue_handler.set_name("pcbuilder-loki")
        self.loki: BoundedLokiHandler | None = None
        self.listener: LokiListener | None = None
        self.pid: int | None = None
        self._stopped = False
        self._lock = threading.Lock()

    @property
    def started(self) -> bool:
        return self.listener is not None and self.pid == os.getpid()

    def start(self) -> None:
        """Start the threads in THIS process and attach the queue handler to root.

        Called after fork in uWSGI workers; anything inherited from a parent (queued
        records, counters) is discarded so that no line is shipped twice."""
        with self._lock:
            if self.started or self._stopped:
                return
            if self.pid is not None:  # inherited over fork
                self.stats = ShippingStats()
                self.queue = queue.Queue(maxsize=self.settings.queue_size)
                self.queue_handler.queue = self.queue
                self.queue_handler.stats = self.stats
            self.pid = os.getpid()
            self.loki = BoundedLokiHandler(self.settings, self.stats, self.line_formatter)
            self.listener = LokiListener(self.queue, self.loki, self.settings.queue_size,
                                         self.stats, self.settings.report_interval)
            self.listener.start()
            root = logging.getLogger()
            if self.queue_handler not in root.handlers:
                root.addHandler(self.queue_handler)
            _register_exit(self)

    def stop(self, timeout: float | None = None) -> None:
        """Detach, drain the queue, push what is buffered: at most ``timeout`` seconds."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            logging.getLogger().removeHandler(self.queue_handler)
            if not self.started:
                return
            deadline = time.monotonic() + (self.settings.shutdown_timeout if timeout is None else timeout)
            self.listener.stop_within(deadline)
            self.loki._send(deadline=deadline)
            self.loki.closed = True  # the library's own atexit flush must not run again
            left = self.queue.qsize() + self.loki.buffer.qsize()
            if left:  # what the deadline did not let through: lost, and said so
                self.stats.add(lost_lines=left)
                with self.stats.lock:
                    self.stats.last_error = "shutdown deadline reached; " + self.stats.last_error
            self.listener.maybe_report(force=True)


_exit_registered: set[int] = set()
_shippers: list[LokiShipper] = []


def _stop_all() -> None:
    for shipper in list(_shippers):
        shipper.stop()


def _register_exit(shipper: LokiShipper) -> None:
    _shippers[:] = [s for s in _shippers if not s._stopped] + [shipper]
    pid = os.getpid()
    if pid in _exit_registered:
        return
    _exit_registered.add(pid)
    atexit.register(_stop_all)
    try:  # uWSGI workers run uwsgi.atexit on graceful exit/reload; keep any earlier hook
        import uwsgi  # type: ignore[import-not-found]
    except ImportError:
        return
    previous = getattr(uwsgi, "atexit", None)

    def _uwsgi_atexit():
        _stop_all()
        if previous is not None:
            previous()

    uwsgi.atexit = _uwsgi_atexit


def _in_uwsgi_master():
    """The ``uwsgi`` module when this process is a uWSGI master that will fork, else None."""
    try:
        import uwsgi  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        return uwsgi if uwsgi.worker_id() == 0 else None
    except Exception:
        return None


def _run_after_fork(func) -> None:
    try:
        import uwsgidecorators  # sets uwsgi.post_fork_hook to its chain
    except Exception:
        uwsgidecorators = None
    if uwsgidecorators is not None:
        uwsgidecorators.postfork(func)
        return
    import uwsgi  # type: ignore[import-not-found]
    previous = getattr(uwsgi, "post_fork_hook", None)

    def _hook():
        if previous is not None:
            previous()
        func()

    uwsgi.post_fork_hook = _hook


_current: LokiShipper | None = None
_postfork_installed = False


def current() -> LokiShipper | None:
    return _current


def configure(settings: LokiSettings | None, line_formatter: logging.Formatter) -> LokiShipper | None:
    """(Re)configure shipping for this process; ``None`` or an empty URL turns it off.

    Safe to call again: the previous shipper is stopped and detached first."""
    global _current, _postfork_installed
    if _current is not None:
        _current.stop(timeout=min(1.0, _current.settings.shutdown_timeout))
        _current = None
    if settings is None or not settings.url:
        return None
    _current = LokiShipper(settings, line_formatter)
    if _in_uwsgi_master() is not None:
        if not _postfork_installed:
            _postfork_installed = True
            _run_after_fork(_start_current)
    else:
        _current.start()
    return _current


def _start_current() -> None:
    if _current is not None:
        _current.start()
