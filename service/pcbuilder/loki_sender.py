"""Pushes the backlog to Loki with loki-logger-handler, retrying what is worth retrying.

One thread per process. Every ``batch_interval`` it pushes what the backlog held at that
moment, in batches of at most ``batch_size`` lines (one push, unless more queued). The POST is
loki-logger-handler's ``LokiRequest.send`` (its session, headers, raising on a non-2xx).
The project adds only what the library lacks for lines that are already rendered and
must not be lost:

- the body: the library's ``Stream.append_value`` stamps a line that is not a dict with
  the time of the push (not the record's), and ``Streams.serialize`` dumps each stream's
  internal attributes into it (``"message_in_json_format"``, ``"loki_metadata"``); so the
  body is Loki's push JSON encoded here, in one C call (msgspec), and gzipped at
  ``GZIP_LEVEL`` (the library would use level 9: several times the CPU for a little less);
- a timeout: the library posts with none (``_TimeoutSession``);
- the outcome of each push, from the library's re-raised exception's cause (``classify``):

=========================================  =============================================
what happened                              what is done with the batch
=========================================  =============================================
2xx                                        done, counted as sent
connection refused or reset, timeout       back in front of the backlog; retried after an
(``unreachable``, ``timeout``)             exponential backoff with full jitter, capped
429 (``rate_limited``)                     same, but never before ``Retry-After``
5xx (``http_5xx``)                         same
any other 4xx (``rejected``, e.g. 400)     dropped and counted: resending cannot succeed
=========================================  =============================================

While Loki is away nothing else is lost: only what overflows the backlog's byte bound
is dropped (the oldest lines, counted as ``overflow``). Counters are reported as
``loki.report`` lines (logger ``pcbuilder.loki``): at once for the first failure, then
at most every ``report_interval`` seconds; they go to the local file and, like every
app line, into the backlog, so they reach Loki once it is back.
"""
from __future__ import annotations

import email.utils
import gzip
import json
import logging
import random
import threading
import time

import msgspec
import requests
from loki_logger_handler.loki_request import LokiRequest

from .loki_backlog import Backlog

REPORT_LOGGER = "pcbuilder.loki"
#: zlib level of the push body. Measured on our lines (bench/README.md): level 1 costs
#: ~1.5 us per line; the library's default (9) several times that, for a little less.
GZIP_LEVEL = 1
#: First retry delay (seconds); doubles per failed push up to the configured cap.
BACKOFF_BASE_S = 0.5

report_log = logging.getLogger(REPORT_LOGGER)


class PushFailed(Exception):
    def __init__(self, reason: str, message: str, retry: bool, not_before_s: float = 0.0):
        super().__init__(message)
        self.reason, self.retry, self.not_before_s = reason, retry, not_before_s


class _TimeoutSession(requests.Session):
    """The library posts with ``session.post(...)`` and no timeout: give it one."""

    def __init__(self, timeout: float):
        super().__init__()
        self.timeout = timeout
        # LOKI_URL is the whole address: no proxy/netrc lookups from the environment,
        # which requests would otherwise redo on every post.
        self.trust_env = False

    def request(self, *args, **kwargs):
        kwargs.setdefault("timeout", self.timeout)
        return super().request(*args, **kwargs)


def _retry_after(response) -> float:
    value = (response.headers.get("Retry-After") or "").strip() if response is not None else ""
    if not value:
        return 0.0
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return 0.0


def classify(exc: Exception) -> PushFailed:
    """What a failed ``LokiRequest.send`` means for its batch."""
    cause = exc.__cause__ or exc
    response = getattr(cause, "response", None)
    status = getattr(response, "status_code", None)
    message = f"{type(cause).__name__}: {cause}"
    if status is None:
        reason = "timeout" if isinstance(cause, requests.Timeout) else "unreachable"
        return PushFailed(reason, message, retry=True)
    message = f"HTTP {status}: {(response.text or '')[:300]}"
    if status == 429:
        return PushFailed("rate_limited", message, retry=True, not_before_s=_retry_after(response))
    if status >= 500:
        return PushFailed("http_5xx", message, retry=True, not_before_s=_retry_after(response))
    return PushFailed("rejected", message, retry=False)


class Sender:
    """The thread that empties a :class:`Backlog` into Loki."""

    def __init__(self, backlog: Backlog, *, url: str, labels: dict, batch_size: int,
                 batch_interval: float, timeout: float, max_backoff: float,
                 report_interval: float):
        self.backlog = backlog
        self.labels = labels
        self.batch_size = batch_size
        self.batch_interval = batch_interval
        self.max_backoff = max_backoff
        self.report_interval = report_interval
        self.request = LokiRequest(url=url, compressed=False,  # compressed here, at GZIP_LEVEL
                                   additional_headers={"Content-Encoding": "gzip"})
        self.request.session = _TimeoutSession(timeout)
        self.timeout = timeout
        self.stopping = threading.Event()
        self.failures_in_a_row = 0
        self.retry_at = 0.0
        self._reported: dict = {"dropped": {}, "failed": {}}
        self._next_report = 0.0  # the first failure is reported at once
        self.thread = threading.Thread(target=self._run, name="loki-sender", daemon=True)

    def start(self) -> None:
        self.thread.start()

    # --- one push -------------------------------------------------------------------

    def body(self, batch: list) -> bytes:
        """Loki's push JSON for ``batch``, gzipped: one stream, the lines as rendered."""
        values = [[str(ts), line, md] if md else [str(ts), line] for ts, line, md, _size in batch]
        push = {"streams": [{"stream": self.labels, "values": values}]}
        try:
            data = msgspec.json.encode(push)
        except UnicodeEncodeError:  # a lone surrogate in a metadata value: escape it
            data = json.dumps(push).encode()
        return gzip.compress(data, compresslevel=GZIP_LEVEL)

    def push(self, batch: list) -> None:
        try:
            self.request.send(self.body(batch))
        except requests.RequestException as exc:
            raise classify(exc) from None

    def push_some(self, deadline: float | None = None) -> bool:
        """Push the lines queued now, in batches, until a push fails or ``deadline``;
        with a deadline (the exit flush), also those queued meanwhile. True when done.

        Lines that arrive during this cycle's pushes wait for the next cycle: draining
        until empty would, under steady traffic, chase every few new lines with another
        push and its fixed HTTP cost (many small pushes a second instead of one)."""
        budget = len(self.backlog) if deadline is None else None
        while len(self.backlog) and (budget is None or budget > 0):
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.request.session.timeout = min(self.timeout, left)
            batch = self.backlog.take(self.batch_size if budget is None else min(self.batch_size, budget),
                                     self.backlog.batch_bytes())
            if not batch:
                break
            if budget is not None:
                budget -= len(batch)
            try:
                self.push(batch)
            except PushFailed as failure:
                self._failed(batch, failure)
                return False
            self.backlog.done(batch)
            self.failures_in_a_row = 0
        return True

    def _failed(self, batch: list, failure: PushFailed) -> None:
        with self.backlog.lock:
            self.backlog.counters.fail(failure.reason, str(failure))
        if not failure.retry:
            self.backlog.done(batch, dropped_reason=failure.reason)
            return
        self.backlog.put_back(batch)
        self.failures_in_a_row += 1
        cap = min(self.max_backoff, BACKOFF_BASE_S * 2 ** (self.failures_in_a_row - 1))
        delay = max(failure.not_before_s, random.uniform(0, cap))  # full jitter
        self.retry_at = time.monotonic() + delay

    # --- the thread -----------------------------------------------------------------

    def _run(self) -> None:
        while not self.stopping.wait(self.batch_interval):
            if time.monotonic() >= self.retry_at:
                self.push_some()
            self.maybe_report()

    def maybe_report(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next_report:
            return
        with self.backlog.lock:
            s = self.backlog.counters.snapshot()
            queued, held = len(self.backlog.entries), self.backlog.bytes
        new_dropped = _delta(s["dropped"], self._reported["dropped"])
        new_failed = _delta(s["failed"], self._reported["failed"])
        if not (new_dropped or new_failed):
            return
        self._next_report = now + self.report_interval
        self._reported = {"dropped": s["dropped"], "failed": s["failed"]}
        report_log.warning("loki.report", extra={
            "dropped": new_dropped, "dropped_total": s["dropped"],
            "failed": new_failed, "failed_total": s["failed"],
            "sent_lines_total": s["sent_lines"], "backlog_lines": queued,
            "backlog_bytes": held, "error": s["last_error"]})

    def stop(self, deadline: float) -> None:
        """Stop the thread, then push what is left until ``deadline``; the rest is
        dropped and counted (``shutdown``)."""
        self.stopping.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(max(0.0, deadline - time.monotonic()))
        self.push_some(deadline)
        left = self.backlog.take(len(self.backlog))
        if left:
            self.backlog.done(left, dropped_reason="shutdown")
        self.maybe_report(force=True)


def _delta(now: dict, before: dict) -> dict:
    return {k: v - before.get(k, 0) for k, v in now.items() if v != before.get(k, 0)}
