"""Every setting of a local stack: one table (:data:`SETTINGS`), read from the environment.

Each entry names the variable, its default, the parser that checks it and what it means;
``./stack up`` checks every entry and a bad value is one line naming it
(``stack: HTTP_PORT=eighty is not a whole number``). ``./stack help`` and the README's
settings table list the same entries. A new setting is one more entry.

Commands that act on a running stack (down, reload, status, logs, trace) use the values
that stack was started with, saved in ``RUN_DIR`` at ``up`` (:func:`for_command`), so the
caller's shell cannot point them elsewhere or stop them with an unrelated bad value.
"""
from __future__ import annotations

import getpass
import ipaddress
import json
import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import tools

ROOT = tools.ROOT
VAR = ROOT / "var"
#: Where ``up`` saves the settings it started the stack with.
SAVED_NAME = "settings.json"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: One SERVER_NAME entry: a host name, an IPv4 address or a bracketed IPv6 address.
HOST_NAME = re.compile(r"[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]")


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


def positive_number(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("is not a number") from None
    if not 0 < value < float("inf"):
        raise ValueError("is not a positive number")
    return value


def non_negative_number(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("is not a number") from None
    if not 0 <= value < float("inf"):
        raise ValueError("is not a number of 0 or more")
    return value


def on_off(raw: str) -> bool:
    word = raw.lower()
    if word in ("on", "1", "true", "yes"):
        return True
    if word in ("off", "0", "false", "no"):
        return False
    raise ValueError("is neither on nor off")


def ipv4_address(raw: str) -> str:
    try:
        return str(ipaddress.IPv4Address(raw))
    except ValueError:
        raise ValueError("is not an IPv4 address (./stack listens on IPv4: e.g. 127.0.0.1,"
                         " or 0.0.0.0 for every interface)") from None


def path(raw: str) -> Path:
    return Path(raw).resolve()


def optional_path(raw: str) -> Path | None:
    return Path(raw).resolve() if raw else None


def optional_text(raw: str) -> str | None:
    return raw or None


def text(raw: str) -> str:
    return raw


def log_level(raw: str) -> str:
    if raw.upper() not in LOG_LEVELS:
        raise ValueError(f"is not a log level ({', '.join(LOG_LEVELS)})")
    return raw.upper()


def loki_url(raw: str) -> str:
    from pcbuilder import loki_url as urls  # needs service/ on sys.path (cli.py puts it there)

    why = urls.problem(raw)
    if why:
        raise ValueError(why)
    return raw


def server_names(raw: str) -> str:
    bad = [name for name in raw.split() if not HOST_NAME.fullmatch(name)]
    if bad:
        raise ValueError(f"has {bad[0]!r}, not a host name or IP address (IPv6 in brackets)")
    return " ".join(raw.split())


def htpasswd_path(raw: str) -> Path | None:
    # The path goes into nginx.conf as it is.
    if any(c in raw for c in '"\\$;{}') or not raw.isprintable():
        raise ValueError("is a path NGINX cannot take (quotes, backslashes, $, ; or braces)")
    return Path(raw).resolve() if raw else None


def _show_loki_url(raw: str) -> str:
    from pcbuilder.loki_url import redacted

    return redacted(raw)


# --- the table -------------------------------------------------------------------------

@dataclass(frozen=True)
class Setting:
    name: str
    #: raw default text, or a function of the values parsed so far (entries above this one)
    default: str | Callable[[dict], str]
    parse: Callable[[str], object]
    meaning: str
    #: the default as ``./stack help`` shows it, when it is not the raw text
    shown: str = ""
    #: attribute on :class:`Settings` (default: the name in lower case)
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


def _tool(name: str) -> Callable[[dict], str]:
    return lambda _values: str(tools.path(name))


SETTINGS: tuple[Setting, ...] = (
    Setting("HTTP_ADDR", "127.0.0.1", ipv4_address, "NGINX listen address (compose listens on all)"),
    Setting("HTTP_PORT", "8080", whole(1, 65535), "NGINX HTTP port"),
    Setting("HTTPS_PORT", "8443", whole(1, 65535), "NGINX HTTPS port"),
    Setting("HTTPS_REDIRECT", "off", on_off, "on: plain HTTP answers 308 to HTTPS"),
    Setting("SERVER_NAME", "localhost 127.0.0.1 [::1]", server_names, "the site's host names,"
            " space separated (IPv6 in brackets): the HTTPS redirect goes only to these"),
    Setting("BASIC_AUTH_FILE", "", htpasswd_path, "htpasswd file; set: HTTP basic authentication"
            " for the whole site (README \"Basic authentication\")", shown="unset (off)"),
    Setting("APP_INSTANCES", "2", whole(1, 32), "uWSGI instances (compose: APP_REPLICAS)"),
    Setting("UWSGI_PROCESSES", "2", whole(1, 64), "worker processes per instance"),
    Setting("UWSGI_THREADS", "1", whole(1, 64), "threads per worker"),
    Setting("LOG_DIR", str(VAR / "log"), path, "JSON log files", shown="./var/log"),
    Setting("DATA_DIR", str(VAR / "data"), path, "SQLite database, generated TLS pair",
            shown="./var/data"),
    Setting("RUN_DIR", str(VAR / "run"), path, "sockets, pid files, rendered configs, process"
            " stderr, the settings of the running stack", shown="./var/run"),
    Setting("DATABASE_PATH", "", optional_path, "the SQLite file",
            shown="$DATA_DIR/pcbuilder.sqlite3"),
    Setting("TLS_CERT", lambda v: str(v["data_dir"] / "tls" / "cert.pem"), path,
            "PEM certificate; when neither it nor TLS_KEY is set and neither default file"
            " exists, a self-signed pair for localhost is generated", shown="$DATA_DIR/tls/cert.pem"),
    Setting("TLS_KEY", lambda v: str(v["data_dir"] / "tls" / "key.pem"), path,
            "its PEM private key (unencrypted)", shown="$DATA_DIR/tls/key.pem"),
    Setting("TLS_SELF_SIGNED_DAYS", "365", whole(1, 3650), "validity of a generated certificate"),
    Setting("LOG_LEVEL", "INFO", log_level, "app log level: " + ", ".join(LOG_LEVELS)),
    Setting("DB_SLOW_MS", "100", non_negative_number, "a query taking this many ms or longer is logged"
            " as db.slow_query (WARNING)"),
    Setting("LOKI_URL", "", loki_url, "Loki's base URL (http://HOST:3100) or push URL"
            " (.../loki/api/v1/push); set: the app ships its lines there", shown="unset",
            show=_show_loki_url),
    Setting("LOKI_BACKLOG_BYTES", str(16 * 1024 * 1024), whole(1, 2**40),
            "bytes of lines one app process holds for Loki (oldest dropped beyond)", shown="16777216 (16 MiB)"),
    Setting("LOKI_BATCH_INTERVAL", "1", positive_number, "seconds between pushes"),
    Setting("LOKI_BATCH_SIZE", "1000", whole(1, 1_000_000), "most lines per push"),
    Setting("LOKI_TIMEOUT", "5", positive_number, "seconds for one push"),
    Setting("LOKI_MAX_BACKOFF", "10", positive_number, "longest wait between retries of a push, seconds"),
    Setting("LOKI_SHUTDOWN_TIMEOUT", "5", positive_number, "seconds the exit flush may take"),
    Setting("LOKI_REPORT_INTERVAL", "10", positive_number, "seconds between drop/failure reports"),
    Setting("LOG_MAX_BYTES", "52428800", whole(1024, 2**62), "a JSON log file larger than this is"
            " rotated (uWSGI's by uWSGI, the others by logrotate)", shown="52428800 (50 MiB)"),
    Setting("LOG_KEEP", "5", whole(1, 999), "old files kept per log file"),
    Setting("LOG_ROTATE_INTERVAL", "30", whole(1, 86400), "seconds between two size checks of the"
            " NGINX, app and browser files"),
    Setting("LOG_STALE_MINUTES", "1440", whole(1, 525600), "files of an instance unchanged this long"
            " are deleted (compose replicas that are gone)"),
    Setting("STACK_ENV", "local", text, "`env` label on log streams"),
    Setting("STACK_START_TIMEOUT", "60", whole(1, 3600), "seconds `up` waits for readiness",
            attr="start_timeout"),
    Setting("NGINX_ACCESS_LOG", "", text, "NGINX access_log directive (`off`: no access log)",
            shown="$LOG_DIR/nginx/access.log stack_json"),
    Setting("NGINX_BIN", _tool("nginx"), text, "nginx binary", shown="/usr/sbin/nginx"),
    Setting("UWSGI_BIN", _tool("uwsgi"), text, "uwsgi binary", shown="$VENV_DIR/bin/uwsgi"),
    Setting("ALLOY_BIN", lambda _v: shutil.which("alloy") or "", optional_text,
            "Grafana Alloy, run when LOKI_URL is set", shown="alloy on PATH, if any"),
    Setting("VENV_DIR", str(ROOT / ".venv"), path, "the Python venv ./stack creates and uses",
            shown="./.venv"),
)
BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    #: parsed value of every entry of SETTINGS, by its key (``http_port``...)
    values: dict
    #: names the environment set (not defaulted)
    provided: frozenset = frozenset()
    python_bin: str = sys.executable
    user: str = field(default_factory=getpass.getuser)

    def __getattr__(self, key: str):
        try:
            return object.__getattribute__(self, "values")[key]
        except KeyError:
            raise AttributeError(key) from None

    @classmethod
    def from_env(cls, env=None, *, needed: set[str] | None = None) -> "Settings":
        """Every setting from ``env`` (empty = default). Bad values raise one
        :class:`SettingsError` listing them all; with ``needed``, only those names must be
        good (the others become None)."""
        env = os.environ if env is None else env
        values, provided, problems = {}, set(), []
        for s in SETTINGS:
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
        return cls(values, frozenset(provided))

    @property
    def instances(self) -> list[str]:
        return [f"app{i}" for i in range(1, self.app_instances + 1)]

    def socket_path(self, instance: str) -> Path:
        return self.run_dir / f"{instance}.sock"

    @property
    def ships_with_alloy(self) -> bool:
        return bool(self.loki_url and self.alloy_bin)

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.http_addr == "0.0.0.0" else self.http_addr
        if self.https_redirect:
            return f"https://{host}:{self.https_port}"
        return f"http://{host}:{self.http_port}"

    # --- the running stack's own settings -------------------------------------------

    def as_env(self) -> dict[str, str]:
        """Every setting as text that :meth:`from_env` reads back to the same values."""
        def text_of(value) -> str:
            if isinstance(value, bool):
                return "on" if value else "off"
            return "" if value is None else str(value)
        return {s.name: text_of(self.values[s.key]) for s in SETTINGS}

    def save(self) -> None:
        data = {"env": self.as_env(), "provided": sorted(self.provided)}
        (self.run_dir / SAVED_NAME).write_text(json.dumps(data, indent=1) + "\n")


def saved(run_dir: Path) -> Settings | None:
    """The settings the stack in ``run_dir`` was started with, if ``up`` saved them."""
    try:
        data = json.loads((run_dir / SAVED_NAME).read_text())
        env, provided = data["env"], data["provided"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    # An entry saved empty (no ALLOY_BIN) stays empty: only names the file lacks (saved by
    # an older ./stack) take today's default.
    values = Settings.from_env({k: v for k, v in env.items() if v}, needed=set()).values
    for s in SETTINGS:
        if s.name in env and not env[s.name]:
            values[s.key] = s.read("")
    return Settings(values, frozenset(provided))


def differing(env, current: Settings) -> list[str]:
    """Names set in ``env`` to something else than ``current`` has (or to a bad value)."""
    names = []
    for s in SETTINGS:
        raw = env.get(s.name, "").strip()
        if not raw:
            continue
        try:
            if s.read(raw) != current.values.get(s.key):
                names.append(s.name)
        except ValueError:
            names.append(s.name)
    return names
