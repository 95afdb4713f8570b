"""CPU time of each process of a running stack, per role, from /proc.

Each thread's time on a CPU comes from ``/proc/PID/task/TID/schedstat`` (nanoseconds; the
scheduler's own accounting), else from ``stat``'s utime + stime (clock ticks of 10 ms).
Two snapshots around a measured run, divided by the requests it served, give µs of CPU
per request for every role: a figure that depends far less on what else the machine does
than requests/s, because it counts only the work our processes did.

Roles: ``nginx`` (its workers; the master only starts them), ``uwsgi-master`` (where
uWSGI's log master writes the request lines a worker hands it through a pipe),
``uwsgi-worker`` (the request thread: the app and its file line), ``sender`` (the app's
Loki sender thread: every worker thread but the main one), ``alloy``, ``loki``,
``supervisord``; ``wrk``, the load generator, is counted apart by the caller.
"""
from __future__ import annotations

import os
from pathlib import Path

TICK_NS = 1e9 / os.sysconf("SC_CLK_TCK")
ROLES = ("nginx", "uwsgi-master", "uwsgi-worker", "sender", "alloy", "loki", "supervisord")


def thread_ns(pid: int, tid: int) -> int:
    """CPU time of one thread so far, in ns (0 when it is gone)."""
    task = Path(f"/proc/{pid}/task/{tid}")
    try:
        return int((task / "schedstat").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        pass
    try:
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        return int((int(fields[11]) + int(fields[12])) * TICK_NS)
    except (OSError, IndexError, ValueError):
        return 0


def threads(pid: int) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def children() -> dict[int, list[int]]:
    """Every process's children (from the parent pid in /proc/PID/stat)."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(entry))
    return kids


def stack_threads(status: dict) -> dict[str, list[tuple[int, int]]]:
    """``./stack status --json`` -> {role: [(pid, tid), ...]} for every thread of the stack."""
    kids = children()
    out: dict[str, list[tuple[int, int]]] = {r: [] for r in ROLES}
    for proc in status.get("processes", []):
        pid, role = proc.get("pid"), proc.get("role") or proc.get("name")
        if not pid:
            continue
        if role == "uwsgi":
            out["uwsgi-master"] += [(pid, t) for t in threads(pid)]
            for worker in kids.get(pid, []):
                for tid in threads(worker):
                    out["uwsgi-worker" if tid == worker else "sender"].append((worker, tid))
        elif role == "nginx":
            for p in [pid] + kids.get(pid, []):
                out["nginx"] += [(p, t) for t in threads(p)]
        elif role in out:
            out[role] += [(pid, t) for t in threads(pid)]
    sup = status.get("supervisord_pid")
    if sup:
        out["supervisord"] += [(sup, t) for t in threads(sup)]
    return out


def snapshot(status: dict) -> dict[str, int]:
    """{role: ns of CPU so far, summed over its threads}."""
    return {role: sum(thread_ns(p, t) for p, t in tids) for role, tids in stack_threads(status).items()}


def per_request_us(before: dict[str, int], after: dict[str, int], requests: int) -> dict[str, float]:
    """µs of CPU per request of each role between two snapshots (threads that started in
    between, such as a respawned worker, count from zero; ones that ended are lost)."""
    return {role: max(0, after.get(role, 0) - before.get(role, 0)) / 1000 / max(requests, 1)
            for role in after}
