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
        data = self.get("/loki/api/v1/query_range", query=logql, limit=limit, direction=direction,
                        start=now - int(since_s * 1e9), end=now + int(60e9))["data"]
        assert data["resultType"] == "streams", data["resultType"]
        entries = []
        for stream in data["result"]:
            for value in stream["values"]:
                extra = value[2] if len(value) > 2 else {}
                entries.append(Entry(stream["stream"], int(value[0]), value[1],
                                     extra.get("structuredMetadata", {}), extra.get("parsed", {})))
        entries.sort(key=lambda e: e.ts_ns)
        return entries

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
