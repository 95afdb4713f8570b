"""Every port, path and knob of a local stack, from environment variables with defaults."""
from __future__ import annotations

import getpass
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import tools

ROOT = tools.ROOT
INSTANCE_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")


class SettingsError(ValueError):
    """A setting has a value the stack cannot use; the message says which and why."""


def _int(env, name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip() or str(default)
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={value} is out of range ({low}..{high})")
    return value


def _path(env, name: str, default: Path) -> Path:
    raw = env.get(name, "").strip()
    return Path(raw).resolve() if raw else default


@dataclass(frozen=True)
class Settings:
    http_addr: str
    http_port: int
    https_port: int
    https_redirect: bool
    tls_cert: Path
    tls_key: Path
    app_instances: int
    uwsgi_processes: int
    uwsgi_threads: int
    log_dir: Path
    data_dir: Path
    run_dir: Path
    loki_url: str
    nginx_access_log: str
    stack_env: str
    start_timeout: int
    nginx_bin: str
    uwsgi_bin: str
    alloy_bin: str | None
    python_bin: str = sys.executable
    user: str = field(default_factory=getpass.getuser)

    @classmethod
    def from_env(cls, env=None) -> "Settings":
        env = os.environ if env is None else env
        var = ROOT / "var"
        data_dir = _path(env, "DATA_DIR", var / "data")
        return cls(
            http_addr=env.get("HTTP_ADDR", "").strip() or "127.0.0.1",
            http_port=_int(env, "HTTP_PORT", 8080, 1, 65535),
            https_port=_int(env, "HTTPS_PORT", 8443, 1, 65535),
            https_redirect=env.get("HTTPS_REDIRECT", "").strip().lower() in ("on", "1", "true", "yes"),
            tls_cert=_path(env, "TLS_CERT", data_dir / "tls" / "cert.pem"),
            tls_key=_path(env, "TLS_KEY", data_dir / "tls" / "key.pem"),
            app_instances=_int(env, "APP_INSTANCES", 2, 1, 32),
            uwsgi_processes=_int(env, "UWSGI_PROCESSES", 2, 1, 64),
            uwsgi_threads=_int(env, "UWSGI_THREADS", 4, 1, 64),
            log_dir=_path(env, "LOG_DIR", var / "log"),
            data_dir=data_dir,
            run_dir=_path(env, "RUN_DIR", var / "run"),
            loki_url=env.get("LOKI_URL", "").strip(),
            nginx_access_log=env.get("NGINX_ACCESS_LOG", "").strip(),
            stack_env=env.get("STACK_ENV", "").strip() or "local",
            start_timeout=_int(env, "STACK_START_TIMEOUT", 60, 1, 3600),
            nginx_bin=env.get("NGINX_BIN") or str(tools.path("nginx")),
            uwsgi_bin=env.get("UWSGI_BIN") or str(tools.path("uwsgi")),
            alloy_bin=env.get("ALLOY_BIN") or shutil.which("alloy", path=env.get("PATH")),
        )

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
        host = "127.0.0.1" if self.http_addr in ("0.0.0.0", "") else self.http_addr
        if self.https_redirect:
            return f"https://{host}:{self.https_port}"
        return f"http://{host}:{self.http_port}"

