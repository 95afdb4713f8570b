"""Talks to this stack's supervisord over its unix socket (XML-RPC)."""
from __future__ import annotations

import xmlrpc.client
from pathlib import Path

from .leftovers import alive


def proxy(run_dir: Path):
    from supervisor.xmlrpc import SupervisorTransport  # only commands that talk to it pay

    sock = run_dir / "supervisor.sock"
    transport = SupervisorTransport(None, None, serverurl=f"unix://{sock}")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor


def supervisord_pid(run_dir: Path) -> int | None:
    """PID of this stack's supervisord if it is alive (a zombie is not), else None."""
    try:
        pid = int((run_dir / "supervisord.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def processes(run_dir: Path) -> list[dict]:
    return proxy(run_dir).getAllProcessInfo()
