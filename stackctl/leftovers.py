"""The programs of a stack whose supervisord is gone, found by what ./stack wrote in RUN_DIR.

Every program runs with a parent-death signal (render.supervised), so when supervisord dies
the kernel has already told each to stop; some take a while (in-flight requests, up to their
``stopwaitsecs``), and a stack started without that signal keeps serving. ``./stack`` finds
them in two ways, both tied to this RUN_DIR so no other stack's process is ever touched:

- NGINX by the PID file it writes (``RUN_DIR/nginx.pid``), checked against its command line
  (NGINX overwrites its environment with its process title);
- every other program by the variable supervisord gives each child,
  ``SUPERVISOR_SERVER_URL=unix://RUN_DIR/supervisor.sock``, with its program name beside it.

How each stops (signal, wait, whether the kernel already sent the signal) is read from the
``RUN_DIR/supervisord.conf`` that started it.
"""
from __future__ import annotations

import configparser
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")


@dataclass
class Leftover:
    name: str              # the supervisord program
    pid: int
    stopsignal: str = "TERM"
    stopwait: float = 10.0
    signalled: bool = False  # the kernel sent stopsignal when supervisord died (--pdeathsig)
    tree: list[int] = field(default_factory=list)  # pid and its descendants (workers)


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state letter) of a live process, None when gone or a zombie."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    state, ppid = raw[raw.rindex(")") + 2:].split()[:2]  # the name in (...) may hold spaces
    return None if state in "ZX" else (int(ppid), state)


def alive(pid: int) -> bool:
    """A running process, not a zombie nobody has reaped yet."""
    return _stat(pid) is not None


def _all() -> dict[int, int]:
    """Every live process: pid -> parent pid."""
    table = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat:
                table[int(entry.name)] = stat[0]
    return table


def _program_of(pid: int, marker: bytes) -> str | None:
    try:
        env = (PROC / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:  # another user's process, or gone
        return None
    if marker not in env:
        return None
    for item in env:
        if item.startswith(b"SUPERVISOR_PROCESS_NAME="):
            return item.split(b"=", 1)[1].decode(errors="replace")
    return None


def _nginx_pid(run_dir: Path) -> int | None:
    try:
        pid = int((run_dir / "nginx.pid").read_text().strip())
        cmdline = (PROC / str(pid) / "cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if str(run_dir / "nginx.conf").encode() in cmdline and alive(pid) else None


def _descendants(pid: int, parents: dict[int, int]) -> list[int]:
    tree, todo = [pid], [pid]
    while todo:
        parent = todo.pop()
        children = [p for p, pp in parents.items() if pp == parent]
        tree += children
        todo += children
    return tree


def _how_they_stop(run_dir: Path) -> dict[str, tuple[str, float, bool]]:
    conf = configparser.RawConfigParser(strict=False)
    try:
        conf.read_string((run_dir / "supervisord.conf").read_text())
    except (OSError, configparser.Error):
        return {}
    how = {}
    for section in conf.sections():
        if section.startswith("program:"):
            opts = conf[section]
            how[section.split(":", 1)[1]] = (
                opts.get("stopsignal", "TERM").removeprefix("SIG"),
                float(opts.get("stopwaitsecs", "10")),
                "--pdeathsig" in opts.get("command", ""))
    return how


def find(run_dir: Path) -> list[Leftover]:
    """The programs started from ``run_dir`` that still run, with their workers."""
    parents = _all()
    marker = f"SUPERVISOR_SERVER_URL=unix://{run_dir / 'supervisor.sock'}".encode()
    named = {pid: name for pid in parents if (name := _program_of(pid, marker))}
    nginx = _nginx_pid(run_dir)
    if nginx:
        named[nginx] = "nginx"
    how = _how_they_stop(run_dir)
    found = []
    for pid, name in sorted(named.items()):
        if parents.get(pid) in named:  # a worker of one found already
            continue
        stopsignal, stopwait, signalled = how.get(name, ("TERM", 10.0, False))
        found.append(Leftover(name, pid, stopsignal, stopwait, signalled, _descendants(pid, parents)))
    return found


def describe(leftovers: list[Leftover]) -> str:
    return ", ".join(f"{left.name} (pid {left.pid})" for left in leftovers)


def stop(leftovers: list[Leftover], progress=None) -> None:
    """Each one stopped as supervisord would: its stop signal (unless the kernel sent it
    already), up to its stop wait for it to finish, then SIGKILL for it and its workers."""
    start = time.monotonic()
    for left in leftovers:
        if not left.signalled:
            _signal(left.pid, getattr(signal, "SIG" + left.stopsignal, signal.SIGTERM))
    waiting = list(leftovers)
    reported = 0
    while waiting:
        waiting = [left for left in waiting if alive(left.pid)]
        overdue = [left for left in waiting if time.monotonic() - start > left.stopwait]
        for left in overdue:
            for pid in left.tree:
                _signal(pid, signal.SIGKILL)
        if waiting:
            waited = int(time.monotonic() - start)
            if progress and waited >= reported + 5:
                reported = waited
                progress(f"waiting for {describe(waiting)} to finish ({waited}s)")
            time.sleep(0.1)
    for left in leftovers:  # workers a killed master left behind
        for pid in left.tree[1:]:
            if alive(pid):
                _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass
