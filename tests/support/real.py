"""The real Loki and Alloy for the tests that depend on them (marker ``real``, tests/real).

The programs are found like every other tool (stackctl.tools: ``LOKI_BIN``/``ALLOY_BIN``,
else ``.tools/bin``). No registry serves them, so ``./stack test`` cannot install them:

- in CI, ``.ci/run`` unpacks them from ``../shared/bin`` and sets ``STACK_REAL_TIER=required``,
  so a missing binary **fails** the tier;
- elsewhere, without them, the tier is skipped, with one line in pytest's header and
  summary saying how to provide them (docs/testing.md).

:class:`Loki` queries a real Loki's HTTP API the way Grafana does, so assertions are on what a
query sees (stream labels apart from structured metadata).
"""
from __future__ import annotations

import collections
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from stackctl import tools
from tests.support.env import free_port
from tests.support.stack import RunningStack, start_stack
from tests.support.waiting import wait_until

BINARIES = ("loki", "alloy")
REQUIRED = os.environ.get("STACK_REAL_TIER") == "required"
HOW = ("put Grafana Loki 3.7 and Alloy 1.10 in .tools/bin or set LOKI_BIN/ALLOY_BIN"
       " (docs/testing.md)")


def missing() -> list[str]:
    """One explanation per real binary that is not there."""
    return [why for why in (tools.missing(name) for name in BINARIES) if why]


def skip_reason() -> str | None:
    gone = missing()
    return f"real Loki/Alloy tier skipped: {'; '.join(gone)}; {HOW}" if gone else None


def binary(name: str) -> str:
    """Where the real ``name`` is; else a failure (CI) or the tier's skip."""
    why = tools.missing(name)
    if why:
        if REQUIRED:
            pytest.fail(f"STACK_REAL_TIER=required: {why}", pytrace=False)
        pytest.skip(skip_reason())
    return str(tools.path(name))


def start_real_stack(base: Path, **extra_env: str) -> RunningStack:
    """``./stack up -d`` with the real Loki and Alloy, every port of its own."""
    env = {"LOKI_BIN": binary("loki"), "ALLOY_BIN": binary("alloy"),
           "LOKI_PORT": str(free_port()), "LOKI_GRPC_PORT": str(free_port()),
           "ALLOY_PORT": str(free_port()), "LOKI_BATCH_INTERVAL": "0.2"}
    env.update(extra_env)
    return start_stack(base, **env)


def loki_of(stack: RunningStack) -> "Loki":
    """The query API of the Loki that ``stack`` runs."""
    return Loki(f"http://127.0.0.1:{stack.env['LOKI_PORT']}")


@dataclass
class Entry:
    """One log entry as a Loki query returns it."""
    labels: dict          # the stream's indexed labels
    ts_ns: int
    line: str
    metadata: dict        # structured metadata
    parsed: dict          # labels a parser stage of the query extracted

    def json(self) -> dict:
        return json.loads(self.line)

    def key(self) -> tuple:
        """What makes two entries the same entry."""
        return (self.ts_ns, self.line, tuple(sorted(self.labels.items())), tuple(sorted(self.metadata.items())))


class Loki:
    """A real Loki's query API at ``base`` (``http://127.0.0.1:PORT``)."""

    def __init__(self, base: str):
        self.base = base.rstrip("/")
        self.session = requests.Session()
        self.session.trust_env = False

    def get(self, path: str, timeout: float = 30, **params) -> dict:
        resp = self.session.get(self.base + path, params=params, timeout=timeout,
                                headers={"X-Loki-Response-Encoding-Flags": "categorize-labels"})
        assert resp.status_code == 200, f"{path} {params}: {resp.status_code} {resp.text[:500]}"
        return resp.json()

    def query_range(self, logql: str, since_s: float = 3600, limit: int = 5000,
                    direction: str = "forward") -> list[Entry]:
        now = time.time_ns()
        return self._entries(logql, now - int(since_s * 1e9), now + int(60e9), limit, direction)

    def _entries(self, logql: str, start_ns: int, end_ns: int, limit: int, direction: str) -> list[Entry]:
        data = self.get("/loki/api/v1/query_range", query=logql, limit=limit, direction=direction,
                        start=start_ns, end=end_ns)["data"]
        assert data["resultType"] == "streams", data["resultType"]
        entries = []
        for stream in data["result"]:
            for value in stream["values"]:
                extra = value[2] if len(value) > 2 else {}
                entries.append(Entry(stream["stream"], int(value[0]), value[1],
                                     extra.get("structuredMetadata", {}), extra.get("parsed", {})))
        entries.sort(key=lambda e: e.ts_ns)
        return entries

    def query_all(self, logql: str, since_s: float = 3600, page: int = 5000) -> list[Entry]:
        """Every entry of a log query, however many (Loki answers at most ``page`` a query).

        Pages forward from the last timestamp of the page before; the entries at that
        timestamp come again and are skipped once each, so an entry Loki stores twice is
        still counted twice."""
        now = time.time_ns()
        start, end, out, again = now - int(since_s * 1e9), now + int(60e9), [], collections.Counter()
        while True:
            entries = self._entries(logql, start, end, page, "forward")
            for e in entries:
                if again[e.key()]:
                    again[e.key()] -= 1
                else:
                    out.append(e)
            if len(entries) < page:
                return out
            start = entries[-1].ts_ns
            again = collections.Counter(e.key() for e in entries if e.ts_ns == start)
            assert sum(again.values()) < page, f"more than {page} entries at one timestamp: {logql}"

    def ids_by_layer(self, prefix: str, layers=("nginx", "uwsgi", "app"), since_s: float = 3600
                     ) -> dict[str, collections.Counter]:
        """{layer: how many entries carry each request id starting with ``prefix``}."""
        return {layer: collections.Counter(
                    e.metadata.get("request_id") for e in self.query_all(
                        f'{{service_name="pc-builder", layer="{layer}"}} | request_id=~"{prefix}.*"',
                        since_s=since_s))
                for layer in layers}

    def wait_for_ids(self, ids, prefix: str, layers=("nginx", "uwsgi", "app"), timeout: float = 90
                     ) -> dict[str, collections.Counter]:
        """``ids_by_layer`` once every id of ``ids`` is there at every layer."""
        wanted, last = set(ids), {}

        def complete():
            last.update(self.ids_by_layer(prefix, layers))
            return last if all(wanted <= set(last[layer]) for layer in layers) else None

        try:
            return wait_until(complete, timeout, f"{len(wanted)} request ids at {layers} in Loki", interval=1)
        except AssertionError as exc:
            missing = {layer: len(wanted - set(last.get(layer, ()))) for layer in layers}
            raise AssertionError(f"{exc}; still missing per layer: {missing}") from None

    def instant(self, logql: str, at_s: float | None = None) -> list[dict]:
        """An instant metric query's series (``{"metric": {...}, "value": [t, "v"]}``)."""
        data = self.get("/loki/api/v1/query", query=logql,
                        time=f"{time.time() if at_s is None else at_s:.3f}")["data"]
        assert data["resultType"] == "vector", data["resultType"]
        return data["result"]

    def answer(self, target, start_s: float, end_s: float, step_s: int = 15) -> list:
        """A dashboard target's answer (tests/support/dashboards.py ``Target``), asked the
        way Grafana asks: an instant query at ``end_s``, or a range query over the window."""
        if target.query_type == "instant":
            assert not target.is_log_query, f"{target.where}: Loki refuses instant log queries"
            return self.instant(target.expr, at_s=end_s)
        params = {"query": target.expr, "start": int(start_s * 1e9), "end": int(end_s * 1e9)}
        if target.is_log_query:
            params |= {"limit": target.panel.get("maxLines") or 1000, "direction": "backward"}
        else:
            params["step"] = f"{step_s}s"
        data = self.get("/loki/api/v1/query_range", **params)["data"]
        assert data["resultType"] == ("streams" if target.is_log_query else "matrix"), (target.where, data)
        return data["result"]

    def metric(self, logql: str, since_s: float = 3600, step: str = "10s") -> list[dict]:
        """A metric query's series (``{"metric": {...}, "values": [[t, "v"], ...]}``)."""
        now = time.time()
        data = self.get("/loki/api/v1/query_range", query=logql, step=step,
                        start=f"{now - since_s:.3f}", end=f"{now + 60:.3f}")["data"]
        assert data["resultType"] == "matrix", data["resultType"]
        return data["result"]

    def wait_for(self, logql: str, predicate, timeout: float = 30, since_s: float = 3600,
                 what: str = "") -> list[Entry]:
        """The query's entries once ``predicate(entries)`` holds (polls every 0.25 s)."""
        last: list = []

        def check():
            last[:] = self.query_range(logql, since_s=since_s)
            return last if predicate(last) else None

        try:
            return wait_until(check, timeout, what or f"Loki: {logql}", interval=0.25)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the query last returned {len(last)} entries") from None
