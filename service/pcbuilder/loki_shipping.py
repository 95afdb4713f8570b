"""Ships the app's log lines to Loki, off the request path, without losing them.

The request thread's whole share is :class:`LokiHandler.emit`: take the line the file
handler already rendered (the same text object, see ``logging_config.LineFormatter``)
and append it to the process's byte-bounded :class:`~pcbuilder.loki_backlog.Backlog`. A
:class:`~pcbuilder.loki_sender.Sender` thread pushes the backlog with loki-logger-handler
and retries failed pushes (backoff, ``Retry-After``); only what overflows the bound is
dropped, and counted.

Every pushed line is the local file's line, character for character; labels are only
``service_name``, ``layer``, ``instance``, ``env`` and ``worker`` (low cardinality); ``request_id``
and, where the event has them, ``method``, ``path`` and ``status`` travel as Loki
*structured metadata* (never labels). The entry's timestamp is the record's creation time
(the line's ``time`` field, to the microsecond).

One stream per process (the ``worker`` label, uWSGI's worker id): Loki's ingester writes a
push to its WAL after releasing the stream, so two processes pushing one stream at once can
leave their records out of order, and a restart's replay then drops the earlier one as a
duplicate of acknowledged lines (docs/logs.md, "One stream per sender").

Settings: the ``LOKI_*`` entries and ``STACK_ENV`` of :data:`pcbuilder.settings.APP_SETTINGS`
(meaning and defaults there). An empty ``LOKI_URL`` turns shipping off; it may be Loki's
base URL or its push URL (:mod:`pcbuilder.loki_url`).

Fork model: under uWSGI the master loads the app, then forks the workers. Nothing ships
from the master (lines it logs before the fork stay in the local file only, so no worker
inherits and re-sends them); a post-fork hook gives each worker its own backlog and
sender. Outside uWSGI (tests, ``flask run``) shipping starts at configure time.
Shutdown (``atexit`` and ``uwsgi.atexit``) pushes what is left within
``LOKI_SHUTDOWN_TIMEOUT``.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from dataclasses import dataclass

from .loki_backlog import Backlog
from .loki_sender import REPORT_LOGGER, Sender
from .loki_url import push_url
from .request_log import worker_id
from .settings import AppSettings

SERVICE_NAME = "pc-builder"
#: Event fields that also go to Loki as structured metadata (never as labels).
METADATA_KEYS = ("request_id", "method", "path", "status")
#: Loggers never shipped: what the push itself logs (a Loki outage must not feed more
#: lines into the backlog). Our own ``loki.report`` lines are shipped.
_NOT_SHIPPED = ("urllib3", "requests", "LokiHandlerDebug")


@dataclass
class LokiSettings:
    url: str  # the push URL
    instance: str
    env: str
    backlog_bytes: int
    batch_interval: float
    batch_size: int
    timeout: float
    max_backoff: float
    shutdown_timeout: float
    report_interval: float

    @classmethod
    def from_settings(cls, conf: AppSettings, instance: str, url: str | None = None,
                      stack_env: str | None = None) -> "LokiSettings":
        """``conf``'s Loki entries; ``url`` and ``stack_env`` override theirs."""
        return cls(
            url=push_url(conf.loki_url if url is None else url),
            instance=instance,
            env=(conf.stack_env if stack_env is None else stack_env).strip() or "local",
            backlog_bytes=conf.loki_backlog_bytes,
            batch_interval=conf.loki_batch_interval,
            batch_size=conf.loki_batch_size,
            timeout=conf.loki_timeout,
            max_backoff=conf.loki_max_backoff,
            shutdown_timeout=conf.loki_shutdown_timeout,
            report_interval=conf.loki_report_interval,
        )

    def labels(self, worker: int) -> dict[str, str]:
        """The stream of one process: its own, so that no two senders share one."""
        return {"service_name": SERVICE_NAME, "layer": "app", "instance": self.instance,
                "env": self.env, "worker": str(worker)}


class LokiHandler(logging.Handler):
    """Appends each record's rendered line to the backlog: the request thread's share.

    Inactive (drops nothing, ships nothing) until :meth:`start` runs in this process."""

    def __init__(self, settings: LokiSettings, formatter):
        super().__init__()
        self.settings = settings
        self.setFormatter(formatter)
        self.backlog: Backlog | None = None
        self.sender: Sender | None = None
        self.set_name("pcbuilder-loki")

    def start(self) -> None:
        """A fresh backlog and sender for THIS process (after fork in uWSGI workers)."""
        s = self.settings
        self.backlog = Backlog(s.backlog_bytes)
        self.sender = Sender(self.backlog, url=s.url, labels=s.labels(worker_id()), batch_size=s.batch_size,
                             batch_interval=s.batch_interval, timeout=s.timeout,
                             max_backoff=s.max_backoff, report_interval=s.report_interval)
        self.sender.start()

    def emit(self, record: logging.LogRecord) -> None:
        backlog = self.backlog
        if backlog is None or record.name.startswith(_NOT_SHIPPED):
            return
        try:
            line = self.formatter.text(record)
            event = record.msg if isinstance(record.msg, dict) else {}
            metadata = {k: str(v) for k in METADATA_KEYS if (v := event.get(k)) is not None}
            backlog.append(round(record.created * 1_000_000) * 1000, line, metadata)
        except Exception:  # logging must never fail the caller
            self.handleError(record)

    def stop(self, timeout: float | None = None) -> None:
        """Detach, then push what is left: at most ``timeout`` seconds."""
        logging.getLogger().removeHandler(self)
        sender, self.sender = self.sender, None
        if sender is not None:
            wait = self.settings.shutdown_timeout if timeout is None else timeout
            sender.stop(time.monotonic() + wait)
        self.backlog = None


_current: LokiHandler | None = None
_exit_hooked_pid: int | None = None
_postfork_installed = False
_lock = threading.Lock()


def current() -> LokiHandler | None:
    return _current


def configure(settings: LokiSettings | None, formatter) -> LokiHandler | None:
    """(Re)configure shipping for this process; ``None`` or an empty URL turns it off.

    Safe to call again: the previous handler is stopped and detached first."""
    global _current, _postfork_installed
    with _lock:
        if _current is not None:
            _current.stop(timeout=min(1.0, _current.settings.shutdown_timeout))
            _current = None
        if settings is None or not settings.url:
            return None
        _current = LokiHandler(settings, formatter)
        logging.getLogger().addHandler(_current)
    if _in_uwsgi_master():
        if not _postfork_installed:
            _postfork_installed = True
            _run_after_fork(_start_current)
    else:
        _start_current()
    return _current


def _start_current() -> None:
    handler = _current
    if handler is None:
        return
    handler.start()
    _hook_exit()


def _stop_current() -> None:
    handler = _current
    if handler is not None:
        handler.stop()


def _hook_exit() -> None:
    """Flush at exit, once per process: ``atexit``, and uWSGI's own hook in workers."""
    global _exit_hooked_pid
    if _exit_hooked_pid == os.getpid():
        return
    _exit_hooked_pid = os.getpid()
    atexit.register(_stop_current)
    try:
        import uwsgi  # type: ignore[import-not-found]
    except ImportError:
        return
    previous = getattr(uwsgi, "atexit", None)

    def _uwsgi_atexit():
        _stop_current()
        if previous is not None:
            previous()

    uwsgi.atexit = _uwsgi_atexit


def _in_uwsgi_master() -> bool:
    """True when this process is a uWSGI master that will fork workers."""
    try:
        import uwsgi  # type: ignore[import-not-found]
        return uwsgi.worker_id() == 0
    except Exception:
        return False


def _run_after_fork(func) -> None:
    import uwsgidecorators  # type: ignore[import-not-found]  # chains uwsgi.post_fork_hook

    uwsgidecorators.postfork(func)


__all__ = ["LokiSettings", "LokiHandler", "configure", "current", "REPORT_LOGGER", "SERVICE_NAME"]
