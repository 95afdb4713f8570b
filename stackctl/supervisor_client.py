"""Talks to this stack's supervisord over its unix socket (XML-RPC)."""
from __future__ import annotations

import time
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


#: How often ./stack asks supervisord while it waits. Each call also wakes supervisord's
#: loop, which otherwise notices an exited child only at its next one-second tick.
POLL_SECONDS = 0.05
_STOPPING = ("STARTING", "RUNNING", "BACKOFF", "STOPPING")


def stop_programs(run_dir: Path, timeout: float) -> None:
    """Stop every program in supervisord's own shutdown order (the highest priority first:
    NGINX before the uWSGI instances, Alloy and Loki last), the programs of one priority at
    the same time. supervisord's shutdown stops one group after another, and each program
    is a group of its own, so the instances would stop one by one. Each program still gets
    its stop signal and supervisord's stopwaitsecs before SIGKILL."""
    server = proxy(run_dir)
    tiers: dict[int, list[str]] = {}
    for conf in server.getAllConfigInfo():
        tiers.setdefault(conf["group_prio"], []).append(f"{conf['group']}:{conf['name']}")
    deadline = time.monotonic() + timeout
    for prio in sorted(tiers, reverse=True):
        for name in tiers[prio]:
            try:
                server.stopProcess(name, False)
            except xmlrpc.client.Fault:  # not running: nothing to stop
                pass
        while time.monotonic() < deadline:
            states = {f"{p['group']}:{p['name']}": p["statename"] for p in server.getAllProcessInfo()}
            if not any(states.get(name) in _STOPPING for name in tiers[prio]):
                break
            time.sleep(POLL_SECONDS)
