"""The settings the app reads from its environment: one definition, shared with ``./stack``.

Each :class:`Setting` names the variable, its default, the parser that checks it and what
it means. The app (:func:`from_env`, called by ``create_app``) and ``./stack``
(``stackctl/settings.py``, whose table includes :data:`APP_SETTINGS`) read the same
entries, so a bad value fails the same way everywhere: ``./stack up`` refuses to start,
and a uWSGI instance under compose or Helm refuses to load the app, naming it
(``LOKI_TIMEOUT='soon' is not a number``).

Standard library only: the health check and ``./stack help`` import it before Flask, or
before the venv exists.
"""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from typing import Callable

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(ValueError):
    """One or more settings cannot be used; each line says which and why."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


# --- parsers: raw text -> value, or ValueError(why) -----------------------------------

def whole(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError("is not a whole number") from None
        if not low <= value <= high:
            raise ValueError(f"is out of range ({low}..{high})")
        return value
    return parse


def _number(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("is not a finite number")
    return value


def positive_number(raw: str) -> float:
    value = _number(raw)
    if value <= 0:
        raise ValueError("is not a positive number")
    return value


def non_negative_number(raw: str) -> float:
    value = _number(raw)
    if value < 0:
        raise ValueError("is not a number of 0 or more")
    return value


def fraction(raw: str) -> float:
    value = _number(raw)
    if not 0 <= value <= 1:
        raise ValueError("is not a fraction from 0 to 1")
    return value


def on_off(raw: str) -> bool:
    word = raw.lower()
    if word in ("on", "1", "true", "yes"):
        return True
    if word in ("off", "0", "false", "no"):
        return False
    raise ValueError("is neither on nor off")


def text(raw: str) -> str:
    return raw


def optional_text(raw: str) -> str | None:
    return raw or None


def log_level(raw: str) -> str:
    if raw.upper() not in LOG_LEVELS:
        raise ValueError(f"is not a log level ({', '.join(LOG_LEVELS)})")
    return raw.upper()


def loki_url(raw: str) -> str:
    from .loki_url import problem

    why = problem(raw)
    if why:
        raise ValueError(why)
    return raw


def _show_loki_url(raw: str) -> str:
    from .loki_url import redacted

    return redacted(raw)


# --- one entry ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Setting:
    name: str
    #: raw default text, or a function of the values parsed so far (entries above this one)
    default: str | Callable[[dict], str]
    parse: Callable[[str], object]
    meaning: str
    #: the default as ``./stack help`` shows it, when it is not the raw text
    shown: str = ""
    #: attribute on the settings object (default: the name in lower case)
    attr: str = ""
    #: how a value appears in messages (LOKI_URL hides a password)
    show: Callable[[str], str] = text

    @property
    def key(self) -> str:
        return self.attr or self.name.lower()

    @property
    def default_text(self) -> str:
        return self.shown or (self.default if isinstance(self.default, str) else "")

    def read(self, raw: str) -> object:
        try:
            return self.parse(raw)
        except ValueError as exc:
            raise ValueError(f"{self.name}={shlex.quote(self.show(raw))} {exc}") from None


def read_all(settings, env, needed: set[str] | None = None) -> tuple[dict, set[str]]:
    """``{key: value}`` of every entry from ``env`` (empty = default) and the names ``env``
    set. Bad values raise one :class:`SettingsError` listing them all; with ``needed``,
    only those names must be good (the others become None)."""
    values, provided, problems = {}, set(), []
    for s in settings:
        raw = env.get(s.name, "").strip()
        values[s.key] = None
        if raw:
            provided.add(s.name)
        else:
            try:
                raw = s.default(values) if callable(s.default) else s.default
            except TypeError:
                continue  # the default derives from a bad entry, reported there
        try:
            values[s.key] = s.read(raw)
        except ValueError as exc:
            if needed is None or s.name in needed:
                problems.append(str(exc))
    if problems:
        raise SettingsError(problems)
    return values, provided


# --- what the app reads --------------------------------------------------------------------

APP_SETTINGS: tuple[Setting, ...] = (
    Setting("LOG_LEVEL", "INFO", log_level, "app log level: " + ", ".join(LOG_LEVELS)),
    Setting("DB_SLOW_MS", "100", non_negative_number, "a query taking this many ms or longer is logged"
            " as db.slow_query (WARNING)"),
    Setting("LOG_DETAIL", "on", on_off, "detail on demand: keep each request's fine events in memory and write"
            " them (before request.finished) only for a failed, slow or sampled request; off: never"
            " (LOG_LEVEL=DEBUG writes them for every request either way)"),
    Setting("LOG_DETAIL_SLOW_MS", "500", non_negative_number, "a request taking this many ms or longer"
            " keeps its detail (0: every request)"),
    Setting("LOG_DETAIL_SAMPLE", "0.01", fraction, "fraction of the other requests that keep their detail"
            " (0 to 1)"),
    Setting("LOG_DETAIL_MAX_EVENTS", "200", whole(1, 100_000), "most fine events kept per request"
            " (the rest are counted in detail_dropped)"),
    Setting("LOG_DETAIL_MAX_BYTES", str(64 * 1024), whole(1024, 2**30), "most bytes of fine events kept"
            " per request, estimated from their fields (the rest are counted in detail_dropped)",
            shown="65536 (64 KiB)"),
    Setting("STACK_ENV", "local", text, "`env` label on log streams"),
    Setting("LOKI_URL", "", loki_url, "Loki's base URL (http://HOST:3100) or push URL"
            " (.../loki/api/v1/push); set: the app ships its lines there", shown="unset",
            show=_show_loki_url),
    Setting("LOKI_BACKLOG_BYTES", str(16 * 1024 * 1024), whole(1, 2**40),
            "bytes of lines one app process holds for Loki (oldest dropped beyond)",
            shown="16777216 (16 MiB)"),
    Setting("LOKI_BATCH_INTERVAL", "0.5", positive_number, "seconds between pushes"),
    Setting("LOKI_BATCH_SIZE", "1000", whole(1, 1_000_000), "most lines per push"),
    Setting("LOKI_TIMEOUT", "5", positive_number, "seconds for one push"),
    Setting("LOKI_MAX_BACKOFF", "10", positive_number, "longest wait between retries of a push, seconds"),
    Setting("LOKI_SHUTDOWN_TIMEOUT", "5", positive_number, "seconds the exit flush may take"),
    Setting("LOKI_REPORT_INTERVAL", "10", positive_number, "seconds between drop/failure reports"),
)


APP_BY_NAME = {s.name: s for s in APP_SETTINGS}


@dataclass(frozen=True)
class AppSettings:
    """The parsed :data:`APP_SETTINGS` (attributes: ``log_level``, ``loki_url``...)."""

    values: dict

    def __getattr__(self, key: str):
        try:
            return object.__getattribute__(self, "values")[key]
        except KeyError:
            raise AttributeError(key) from None


def from_env(env=None) -> AppSettings:
    """The app's settings from ``env`` (default: the process environment), or
    :class:`SettingsError` naming every bad one."""
    values, _provided = read_all(APP_SETTINGS, os.environ if env is None else env)
    return AppSettings(values)
