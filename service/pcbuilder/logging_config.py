"""The one place where the app's logging is configured.

structlog builds the event (context variables, level, logger name) and hands it to
the standard library as ``extra`` fields (``render_to_log_kwargs``); python-json-logger
renders each record as one JSON object per line. Every stdlib logger (Flask, werkzeug,
libraries) therefore ends up as JSON on the same stream.

When ``LOKI_URL`` is set, the same records (and the same JSON line) are also shipped to
Loki by :mod:`pcbuilder.loki_shipping` (bounded queue, sender started after fork); the
local stream is unchanged either way.
"""
from __future__ import annotations

import logging
import os
import sys

import structlog
from pythonjsonlogger.json import JsonFormatter

from .log_file import AppendFileHandler

#: Fields every app line carries, in this order (see README "Log fields").
_RENAME = {
    "levelname": "level", "name": "logger", "message": "event", "process": "pid",
    "exc_info": "traceback",
}
_HANDLER_NAME = "pcbuilder-local"
#: The browser's navigation timings (steps 1 and 12), logged by the beacon endpoint.
BROWSER_LOGGER = "pcbuilder.browser"
_BROWSER_HANDLER_NAME = "pcbuilder-browser"

#: Event keys that would clash with a LogRecord attribute (``makeRecord`` raises KeyError
#: on ``extra={"name": ...}``) or overwrite one of the line's own fields.
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime"}
_LINE_FIELDS = frozenset({"time", "level", "logger", "pid", "layer", "instance", "traceback",
                          "timestamp"})
#: Passed by render_to_log_kwargs as logging keyword arguments, not as extra.
_LOG_KWARGS = frozenset({"event", "exc_info", "stack_info", "stacklevel"})
_RESERVED = (_RECORD_ATTRS | _LINE_FIELDS) - _LOG_KWARGS


def rename_reserved_keys(_logger, _method, event_dict):
    """structlog processor: ``name=...`` becomes ``name_=...`` (and so on) instead of a
    KeyError at the call site or a forged ``level``/``instance`` in the line."""
    for key in [k for k in event_dict if k in _RESERVED]:
        new = key + "_"
        while new in event_dict:
            new += "_"
        event_dict[new] = event_dict.pop(key)
    return event_dict


class LineFormatter(JsonFormatter):
    """python-json-logger's formatter, formatting each record once.

    The local file and the Loki shipper carry the same line: the second formatter with
    the same static fields reuses the first one's text (kept on the record under a
    ``_`` name, which python-json-logger never outputs) instead of rendering it again.
    """

    def format(self, record: logging.LogRecord) -> str:
        key = tuple(self.static_fields.items())
        cached = record.__dict__.get("_stack_line")
        if cached is not None and cached[0] == key:
            return cached[1]
        line = super().format(record)
        record._stack_line = (key, line)
        return line


def json_formatter(instance: str, layer: str = "app") -> JsonFormatter:
    return LineFormatter(
        "%(levelname)s %(name)s %(message)s %(process)d",
        rename_fields=_RENAME,
        static_fields={"layer": layer, "instance": instance},
        timestamp="time",  # UTC, microseconds, ISO 8601
        json_ensure_ascii=True,  # any byte a client sends stays inside a JSON string
    )


def _replace_handler(logger: logging.Logger, name: str, handler: logging.Handler) -> None:
    for old in [h for h in logger.handlers if h.get_name() == name]:
        logger.removeHandler(old)
        old.close()
    handler.set_name(name)
    logger.addHandler(handler)


def configure_logging(instance: str, log_file: str | None = None, level: str = "INFO",
                      loki_url: str | None = None, stack_env: str | None = None,
                      browser_log_file: str | None = None) -> None:
    """Configure structlog + stdlib logging for this process; safe to call again.

    ``loki_url`` (default: ``$LOKI_URL``) non-empty also ships every record to Loki;
    ``stack_env`` (default: ``$STACK_ENV`` or ``local``) is its ``env`` label.
    ``browser_log_file`` receives the ``BROWSER_LOGGER`` lines (``layer: "browser"``):
    the browser is another layer, so its lines stay off the app's stream.
    """
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            rename_reserved_keys,
            structlog.stdlib.render_to_log_kwargs,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )

    # No line carries a file name or line number, so skip the caller lookup stdlib
    # logging does for every record (the logging HOWTO's "Optimization" section).
    logging._srcfile = None

    root = logging.getLogger()
    handler = AppendFileHandler(log_file) if log_file else logging.StreamHandler(sys.stdout)
    handler.setFormatter(json_formatter(instance))
    _replace_handler(root, _HANDLER_NAME, handler)
    root.setLevel(level.upper())

    browser = logging.getLogger(BROWSER_LOGGER)
    handler = AppendFileHandler(browser_log_file) if browser_log_file else logging.StreamHandler(sys.stdout)
    handler.setFormatter(json_formatter(instance, layer="browser"))
    _replace_handler(browser, _BROWSER_HANDLER_NAME, handler)
    browser.setLevel(logging.INFO)
    browser.propagate = False
    # werkzeug's own access log would duplicate request.finished
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    from . import loki_shipping

    settings = loki_shipping.LokiSettings.from_env(instance, url=loki_url, stack_env=stack_env)
    loki_shipping.configure(settings if settings.url else None, json_formatter(instance))
