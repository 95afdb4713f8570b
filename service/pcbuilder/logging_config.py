"""The one place where the app's logging is configured.

structlog builds the event (context variables, level, logger name) and hands it to
the standard library as ``extra`` fields (``render_to_log_kwargs``); python-json-logger
renders each record as one JSON object per line. Every stdlib logger (Flask, werkzeug,
libraries) therefore ends up as JSON on the same stream.
"""
from __future__ import annotations

import logging
import os
import sys

import structlog
from pythonjsonlogger.json import JsonFormatter

#: Fields every app line carries, in this order (see README "Log fields").
_RENAME = {
    "levelname": "level", "name": "logger", "message": "event", "process": "pid",
    "exc_info": "traceback",
}
_HANDLER_NAME = "pcbuilder-local"


class AppendFileHandler(logging.Handler):
    """Writes each formatted record with a single ``write(2)`` on an ``O_APPEND`` fd.

    Several uWSGI workers share one file per instance; one append-mode write per line
    keeps their lines whole, where a buffered text stream may split a long line
    (a traceback) into several writes that interleave with other processes.
    """

    def __init__(self, path: str):
        super().__init__()
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record) + "\n").encode("utf-8", "backslashreplace")
            while data:
                data = data[os.write(self.fd, data):]
        except Exception:  # logging must never fail the caller
            self.handleError(record)

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass
        super().close()


def json_formatter(instance: str) -> JsonFormatter:
    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s %(process)d",
        rename_fields=_RENAME,
        static_fields={"layer": "app", "instance": instance},
        timestamp="time",  # UTC, microseconds, ISO 8601
        json_ensure_ascii=True,  # any byte a client sends stays inside a JSON string
    )


def configure_logging(instance: str, log_file: str | None = None, level: str = "INFO") -> None:
    """Configure structlog + stdlib logging for this process; safe to call again."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.stdlib.render_to_log_kwargs,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )

    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(handler)
        handler.close()
    handler = AppendFileHandler(log_file) if log_file else logging.StreamHandler(sys.stdout)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(json_formatter(instance))
    root.addHandler(handler)
    root.setLevel(level.upper())
    # werkzeug's own access log would duplicate request.finished
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
