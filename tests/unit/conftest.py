"""Fixtures of the unit tests: an app on a fresh seeded database that logs JSON lines to a
file, its test client, and a clean Loki environment."""
from __future__ import annotations

import json

import pytest

from pcbuilder import create_app, loki_shipping
from pcbuilder.logging_config import json_formatter

@pytest.fixture
def app(tmp_path):
    app = create_app({
        "TESTING": True,
        "DATABASE": str(tmp_path / "data" / "pcbuilder.sqlite3"),
        "APP_LOG_FILE": str(tmp_path / "app.log"),
        "INSTANCE_NAME": "test",
        # No request keeps its detail by chance (sampled, or slow on a busy machine): tests
        # that count lines stay exact; tests of detail on demand set their own.
        "LOG_DETAIL_SAMPLE": 0.0,
        "LOG_DETAIL_SLOW_MS": 60_000.0,
    })
    yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def log_lines(app):
    """Call to get every line logged so far, parsed; pass ``event=`` to filter."""
    path = app.config["APP_LOG_FILE"]

    def read(event: str | None = None) -> list[dict]:
        with open(path, encoding="utf-8") as f:
            lines = [json.loads(line) for line in f if line.strip()]
        return [line for line in lines if event is None or line.get("event") == event]

    return read


LOKI_ENV = ["LOKI_URL", "LOKI_BACKLOG_BYTES", "LOKI_BATCH_INTERVAL", "LOKI_TIMEOUT",
            "LOKI_BATCH_SIZE", "LOKI_SHUTDOWN_TIMEOUT", "LOKI_REPORT_INTERVAL",
            "LOKI_MAX_BACKOFF", "STACK_ENV"]


@pytest.fixture
def no_loki_env(monkeypatch):
    """No LOKI_* setting from the caller's shell; shipping off again afterwards."""
    for name in LOKI_ENV:
        monkeypatch.delenv(name, raising=False)
    yield
    loki_shipping.configure(None, json_formatter("test"))
