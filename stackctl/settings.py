"""Every setting of a local stack: one table (:data:`SETTINGS`), read from the environment.

The app's own entries (log level, Loki shipping...) are :data:`pcbuilder.settings.APP_SETTINGS`,
spliced in: the app checks them the same way when it starts under compose or Helm.

Each entry names the variable, its default, the parser that checks it and what it means;
``./stack up`` checks every entry and a bad value is one line naming it
(``stack: HTTP_PORT=eighty is not a whole number``). ``./stack help`` and the
settings table of docs/stack.md list the same entries. A new setting is one more entry.

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
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

# The entries the app reads too are defined once, in the app's package (APP_SETTINGS).
from pcbuilder.settings import (APP_SETTINGS, Setting, SettingsError, on_off,
                                read_all, text, whole)

from . import tools

ROOT = tools.ROOT
VAR = ROOT / "var"
#: Where ``up`` saves the settings it started the stack with.
SAVED_NAME = "settings.json"
#: One SERVER_NAME entry: a host name, an IPv4 address or a bracketed IPv6 address.
HOST_NAME = re.compile(r"[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]")


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


def server_names(raw: str) -> str:
    bad = [name for name in raw.split() if not HOST_NAME.fullmatch(name)]
    if bad:
        raise ValueError(f"has {bad[0]!r}, not a host name or IP address (IPv6 in brackets)")
    return " ".join(raw.split())


def nginx_rate(raw: str) -> str:
    """NGINX's limit_req_zone rate: ``20r/s`` or ``600r/m``."""
    if not re.fullmatch(r"[1-9][0-9]{0,8}r/[sm]", raw):
        raise ValueError("is not a rate like 20r/s or 600r/m")
    return raw


def binary_or_off(raw: str) -> str:
    """A program's path, or "" for ``off`` (and for none found)."""
    return "" if raw.lower() == "off" else raw


def htpasswd_path(raw: str) -> Path | None:
    # The path goes into nginx.conf as it is.
    if any(c in raw for c in '"\\$;{}') or not raw.isprintable():
        raise ValueError("is a path NGINX cannot take (quotes, backslashes, $, ; or braces)")
    return Path(raw).resolve() if raw else None


def duration(raw: str) -> str:
    """A Prometheus duration of whole seconds or minutes: ``10s``, ``1m``, ``0s``."""
    if not re.fullmatch(r"(0|[1-9][0-9]{0,5})[sm]", raw):
        raise ValueError("is not a duration like 30s or 5m")
    return raw


def objective(raw: str) -> str:
    """An SLO objective: a fraction strictly between 0 and 1 (``0.999``), kept as written."""
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("is not a number") from None
    if not 0 < value < 1 or not re.fullmatch(r"0\.[0-9]+", raw):
        raise ValueError("is not an objective between 0 and 1, like 0.999")
    return raw


def latency_threshold(raw: str) -> str:
    from .loki_rules import FAST_THRESHOLDS  # the thresholds Loki's rules record

    if raw not in FAST_THRESHOLDS:
        raise ValueError(f"is not one of the recorded thresholds ({', '.join(FAST_THRESHOLDS)} s)")
    return raw


def webhook_url(raw: str) -> str:
    if raw and not re.fullmatch(r"https?://[^\s\"'\\]+", raw):
        raise ValueError("is not an http:// or https:// URL")
    return raw


def http_url(raw: str) -> str:
    if not re.fullmatch(r"(https?|file)://[^\s\"'\\]+|[^\s\"'\\:]+", raw):
        raise ValueError("is not a URL (http, https or file) or a relative path")
    return raw.rstrip("/")


# --- the table -------------------------------------------------------------------------

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
            " for the whole site (docs/edge.md)", shown="unset (off)"),
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
    *APP_SETTINGS,
    Setting("LOG_MAX_BYTES", "52428800", whole(1024, 2**62), "a JSON log file larger than this is"
            " rotated (uWSGI's by uWSGI, the others by logrotate)", shown="52428800 (50 MiB)"),
    Setting("LOG_KEEP", "5", whole(1, 999), "old files kept per log file"),
    Setting("LOG_ROTATE_INTERVAL", "30", whole(1, 86400), "seconds between two size checks of the"
            " NGINX, app and browser files"),
    Setting("LOG_STALE_MINUTES", "1440", whole(1, 525600), "files of an instance unchanged this long"
            " are deleted (compose replicas that are gone)"),
    Setting("STACK_START_TIMEOUT", "60", whole(1, 3600), "seconds `up` waits for readiness",
            attr="start_timeout"),
    Setting("NGINX_ACCESS_LOG", "", text, "NGINX access_log directive (`off`: no access log)",
            shown="$LOG_DIR/nginx/access.log stack_json"),
    Setting("NGINX_API_RATE", "20r/s", nginx_rate, "requests per second (`Nr/s`) or minute (`Nr/m`)"
            " one client address may make under the API prefix before 429 (burst 100)"),
    Setting("NGINX_BIN", _tool("nginx"), text, "nginx binary", shown="/usr/sbin/nginx"),
    Setting("UWSGI_BIN", _tool("uwsgi"), text, "uwsgi binary", shown="$VENV_DIR/bin/uwsgi"),
    Setting("LOKI_BIN", lambda _v: tools.found("loki"), binary_or_off, "Grafana Loki (3.7): when"
            " LOKI_URL is unset, `up` runs it (observability/loki/loki.yaml, data in $DATA_DIR/loki)"
            " and everything ships to it; off: never", shown=".tools/bin/loki, if it is there"),
    Setting("LOKI_PORT", "3100", whole(1, 65535), "HTTP port of that Loki (on 127.0.0.1)"),
    Setting("LOKI_GRPC_PORT", "9096", whole(1, 65535), "its gRPC port, used inside Loki (127.0.0.1)"),
    Setting("LOKI_PATTERNS", "off", on_off, "on: that Loki runs its pattern ingester, for Logs"
            " Drilldown's Patterns (~15-30 µs of Loki's CPU per line: docs/logs.md)"),
    Setting("ALLOY_BIN", lambda _v: tools.found("alloy"), binary_or_off, "Grafana Alloy (1.10), run"
            " when the app ships to Loki: it ships NGINX's, uWSGI's and the browser's lines; off:"
            " never",
            shown=".tools/bin/alloy, if it is there"),
    Setting("ALLOY_PORT", "12345", whole(1, 65535), "Alloy's HTTP port (127.0.0.1: /-/ready, its UI)"),
    Setting("PROMETHEUS_BIN", lambda _v: tools.found("prometheus"), binary_or_off, "Prometheus, run with"
            " Alertmanager when `up` runs Loki: it stores the series Loki's ruler records and evaluates the"
            " alerts (docs/alerts.md); off: never", shown="/usr/bin/prometheus, if it is there"),
    Setting("PROMETHEUS_PORT", "9090", whole(1, 65535), "Prometheus's HTTP port (127.0.0.1)"),
    Setting("ALERTMANAGER_BIN", lambda _v: tools.found("alertmanager"), binary_or_off, "Alertmanager,"
            " run with Prometheus; off: never", shown="/usr/bin/prometheus-alertmanager, if it is there"),
    Setting("ALERTMANAGER_PORT", "9093", whole(1, 65535), "Alertmanager's HTTP port (127.0.0.1)"),
    Setting("ALERT_EVAL_INTERVAL", "1m", duration, "how often Loki's ruler records and Prometheus"
            " evaluates the alerts"),
    Setting("ALERT_FOR", "5m", duration, "how long a pipeline alert's condition must hold before it"
            " fires (LayerSilent, UpstreamFailing, LokiRulerSilent)"),
    Setting("ALERT_BURN_FOR", "2m", duration, "the same for the SLO burn-rate alerts"),
    Setting("SLO_AVAILABILITY", "0.999", objective, "availability objective: share of requests at"
            " the edge not answered 5xx, over 30 days"),
    Setting("SLO_LATENCY", "0.99", objective, "latency objective: share of page requests answered"
            " within SLO_LATENCY_THRESHOLD"),
    Setting("SLO_LATENCY_THRESHOLD", "0.3", latency_threshold, "seconds (NGINX request_time) a page"
            " request may take: 0.1, 0.3 or 1"),
    Setting("ALERT_GROUP_WAIT", "30s", duration, "how long Alertmanager gathers a new group's alerts"
            " into its first notification"),
    Setting("ALERT_GROUP_INTERVAL", "5m", duration, "how long Alertmanager waits before it notifies a"
            " group's changes (alerts joining or resolving)"),
    Setting("ALERT_WEBHOOK_URL", "", webhook_url, "Alertmanager sends every alert there (its webhook"
            " JSON); unset: alerts stay in Alertmanager's API and UI and `./stack alerts`",
            shown="unset"),
    Setting("ALERT_RUNBOOK_URL", str(ROOT / "docs" / "alerts.md"), http_url, "where each alert's"
            " runbook annotation points (a section of docs/alerts.md)", shown="./docs/alerts.md"),
    Setting("GRAFANA_URL", "http://localhost:3000", http_url, "Grafana, for the dashboard link of"
            " each alert"),
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
        values, provided = read_all(SETTINGS, env, needed)
        return cls(values, frozenset(provided))

    @property
    def instances(self) -> list[str]:
        return [f"app{i}" for i in range(1, self.app_instances + 1)]

    def socket_path(self, instance: str) -> Path:
        return self.run_dir / f"{instance}.sock"

    @property
    def runs_loki(self) -> bool:
        """Whether ``up`` runs a Loki of its own (LOKI_BIN, when LOKI_URL is unset)."""
        return not self.loki_url and bool(self.loki_bin)

    @property
    def loki_target(self) -> str:
        """The Loki everything ships to and trace asks: LOKI_URL, else the stack's own."""
        if self.loki_url:
            return self.loki_url
        return f"http://127.0.0.1:{self.loki_port}" if self.runs_loki else ""

    @property
    def ships_with_alloy(self) -> bool:
        return bool(self.loki_target and self.alloy_bin)

    @property
    def runs_alerting(self) -> bool:
        """Whether ``up`` runs Prometheus and Alertmanager: with its own Loki, both binaries found."""
        return self.runs_loki and bool(self.prometheus_bin) and bool(self.alertmanager_bin)

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


__all__ = ["SETTINGS", "BY_NAME", "Settings", "SettingsError", "Setting", "saved", "differing"]
