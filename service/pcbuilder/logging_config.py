"""The one place where the app's logging is configured.

structlog builds the event (context variables, level, logger name) and hands the event
dict to the standard library as the record's message; python-json-logger renders each
record as one JSON object per line. Every stdlib logger (Flask, werkzeug, libraries)
therefore ends up as JSON on the same stream.

Cost matters: this runs for every request (bench/README.md). So:

- the fine per-request events are tuples in the request's buffer
  (:mod:`pcbuilder.request_detail`), rendered only for a request that keeps them or at
  DEBUG; :class:`~pcbuilder.request_detail.RecordCapture` on the root logger adds a
  WARNING or a library's record to that buffer, one type check for any other line;
- a line is rendered once, by python-json-logger's msgspec formatter (the fastest of
  the serializers it ships, measured in ``bench/log_cost.py``); the file writer encodes
  that text for its one ``write(2)``, the Loki shipper queues the same text object
  (:class:`LineFormatter`);
- stdlib's per-record caller, thread and process-name lookups are off (no line carries
  them; the logging HOWTO's "Optimization" section).

When ``LOKI_URL`` is set, the same rendered lines are also shipped to Loki by
:mod:`pcbuilder.loki_shipping`; the local stream is unchanged either way.
"""
from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

import structlog
from pythonjsonlogger.json import JsonEncoder
from pythonjsonlogger.msgspec import MsgspecFormatter

from . import settings as app_settings
from .log_file import AppendFileHandler
from .request_detail import RecordCapture
from .settings import AppSettings

#: Fields every app line carries, in this order (see docs/logs.md "Log fields").
_RENAME = {
    "levelname": "level", "name": "logger", "message": "event", "process": "pid",
    "exc_info": "traceback",
}
_FORMAT = "%(levelname)s %(name)s %(message)s %(process)d"
_HANDLER_NAME = "pcbuilder-local"
_CAPTURE_HANDLER_NAME = "pcbuilder-detail"
#: The browser's navigation timings (steps 1 and 12), logged by the beacon endpoint.
BROWSER_LOGGER = "pcbuilder.browser"
_BROWSER_HANDLER_NAME = "pcbuilder-browser"
#: The line's own fields: an event key with one of these names is renamed (``level`` ->
#: ``level_``) rather than forge or overwrite the field.
_LINE_FIELDS = frozenset({"time", "level", "logger", "pid", "layer", "instance", "traceback"})


def guard_line_fields(_logger, _method, event_dict):
    """structlog processor: ``level=...`` becomes ``level_=...`` (and so on) instead of a
    forged ``level``/``instance`` in the line."""
    if _LINE_FIELDS.isdisjoint(event_dict):
        return event_dict
    for key in [k for k in event_dict if k in _LINE_FIELDS]:
        new = key + "_"
        while new in event_dict:
            new += "_"
        event_dict[new] = event_dict.pop(key)
    return event_dict


def event_dict_as_message(_logger, method_name, event_dict):
    """structlog's last processor: the event dict becomes the stdlib record's ``msg``
    (python-json-logger renders a dict message as fields), ``exc_info`` stays a keyword."""
    kwargs = {}
    for key in ("exc_info", "stack_info"):
        if key in event_dict:
            kwargs[key] = event_dict.pop(key)
    if method_name == "exception":
        kwargs.setdefault("exc_info", True)
    return (event_dict,), kwargs


class LineFormatter(MsgspecFormatter):
    """python-json-logger's msgspec formatter with a lean path for structlog events.

    :meth:`text` renders once per record: the line is kept on the record (under a ``_``
    name, which python-json-logger never outputs) for every handler that writes it.
    """

    def add_fields(self, log_data, record, message_dict):
        if not isinstance(record.msg, dict):  # a plain stdlib logger: the library's way
            super().add_fields(log_data, record, message_dict)
            return
        # The documented extension point, for our own events: the same fields as the
        # library's general path, merged in C instead of key by key.
        log_data.update(level=record.levelname, logger=record.name, pid=record.process)
        log_data.update(self.static_fields)
        log_data.update(message_dict)
        if "exc_info" in log_data:
            log_data["traceback"] = log_data.pop("exc_info")
        log_data["time"] = datetime.fromtimestamp(record.created, tz=timezone.utc)

    def jsonify_log_record(self, log_data) -> str:
        try:
            return super().jsonify_log_record(log_data)
        except (UnicodeEncodeError, TypeError, ValueError):
            # A lone surrogate (not UTF-8): the library's stdlib-json encoder escapes it,
            # so the line survives.
            return json.dumps(log_data, cls=JsonEncoder, ensure_ascii=True)

    def text(self, record: logging.LogRecord) -> str:
        """The record's JSON line (no newline), rendered at most once."""
        cached = record.__dict__.get("_stack_line")
        if cached is None:
            cached = record._stack_line = self.format(record)
        return cached


def json_formatter(instance: str, layer: str = "app") -> LineFormatter:
    return LineFormatter(_FORMAT, rename_fields=_RENAME,
                         static_fields={"layer": layer, "instance": instance},
                         timestamp="time")  # UTC, microseconds, ISO 8601


class LineHandler(logging.Handler):
    """Writes each record's rendered line to its file (or stdout) in one write."""

    def __init__(self, formatter: LineFormatter, log_file: str | None):
        super().__init__()
        self.setFormatter(formatter)
        self.file = AppendFileHandler(log_file) if log_file else None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.formatter.text(record) + "\n").encode()  # valid UTF-8 (see above)
            if self.file is not None:
                self.file.write_line(data)
            else:
                sys.stdout.buffer.write(data)
                sys.stdout.flush()
        except Exception:  # logging must never fail the caller
            self.handleError(record)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        super().close()


def _replace_handler(logger: logging.Logger, name: str, handler: logging.Handler) -> None:
    for old in [h for h in logger.handlers if h.get_name() == name]:
        logger.removeHandler(old)
        old.close()
    handler.set_name(name)
    logger.addHandler(handler)


def debug_enabled(logger_name: str) -> bool:
    """Whether a DEBUG event of this logger would be written: the guard of the
    per-request fine events (the logging HOWTO's ``isEnabledFor`` idiom)."""
    return logging.getLogger(logger_name).isEnabledFor(logging.DEBUG)


def configure_logging(instance: str, log_file: str | None = None, level: str = "INFO",
                      loki_url: str | None = None, stack_env: str | None = None,
                      browser_log_file: str | None = None,
                      settings: AppSettings | None = None) -> None:
    """Configure structlog + stdlib logging for this process; safe to call again.

    ``settings`` (default: read from the environment) gives the Loki shipping entries;
    ``loki_url`` and ``stack_env`` override its ``LOKI_URL`` (non-empty: every record is
    also shipped to Loki) and ``STACK_ENV`` (the ``env`` label).
    ``browser_log_file`` receives the ``BROWSER_LOGGER`` lines (``layer: "browser"``):
    the browser is another layer, so its lines stay off the app's stream.
    """
    level = app_settings.APP_BY_NAME["LOG_LEVEL"].read((level or "INFO").strip())
    structlog.reset_defaults()
    structlog.configure(
        processors=[
            # stdlib's level, not a level baked into cached loggers: a later call of
            # this function (tests) changes it for every logger.
            structlog.stdlib.filter_by_level,
            structlog.contextvars.merge_contextvars,
            guard_line_fields,
            event_dict_as_message,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    logging.logProcesses = True  # pid is a field of every line

    root = logging.getLogger()
    formatter = json_formatter(instance)
    _replace_handler(root, _HANDLER_NAME, LineHandler(formatter, log_file))
    _replace_handler(root, _CAPTURE_HANDLER_NAME, RecordCapture())
    root.setLevel(level)

    browser = logging.getLogger(BROWSER_LOGGER)
    beacons = LineHandler(json_formatter(instance, layer="browser"), browser_log_file)
    if beacons.file is not None:  # a stack's first beacons arrive after Alloy tails the file
        beacons.file.create()
    _replace_handler(browser, _BROWSER_HANDLER_NAME, beacons)
    browser.setLevel(logging.INFO)
    browser.propagate = False
    # werkzeug's own access log would duplicate request.finished
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    from . import loki_shipping

    loki = loki_shipping.LokiSettings.from_settings(settings or app_settings.from_env(), instance,
                                                    url=loki_url, stack_env=stack_env)
    loki_shipping.configure(loki if loki.url else None, formatter)

