"""Shared fixtures: an app on a fresh seeded database that logs JSON lines to a file."""
from __future__ import annotations

import json

import pytest

from pcbuilder import create_app


@pytest.fixture
def app(tmp_path):
    app = create_app({
        "TESTING": True,
        "DATABASE": str(tmp_path / "data" / "pcbuilder.sqlite3"),
        "APP_LOG_FILE": str(tmp_path / "app.log"),
        "INSTANCE_NAME": "test",
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


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A real nginx + 2 uWSGI stack started with ./stack up -d, stopped after the module."""
    from tests.stack_runner import start_stack, stop_stack

    running = start_stack(tmp_path_factory.mktemp("stack"))
    try:
        yield running
    finally:
        stop_stack(running)
