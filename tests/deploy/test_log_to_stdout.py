"""LOG_TO=stdout (the Helm chart's setting): every layer of an app container on stdout.

A real uWSGI with service/uwsgi.ini, started the way the chart's container does
(``uwsgi --ini uwsgi.ini 3>&1``) with stdout a pipe, as under a container runtime.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from pcbuilder.healthcheck import check
from tests.support.tools import REPO_ROOT, require_tool
from tests.support.waiting import wait_until


UWSGI_INI = REPO_ROOT / "service" / "uwsgi.ini"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG"}}
    env.update(UWSGI_SOCKET=str(tmp_path / "app.sock"), DATA_DIR=str(tmp_path / "data"),
               LOG_DIR=str(tmp_path / "log"), INSTANCE="pod-1", UWSGI_PROCESSES="2",
               UWSGI_THREADS="2", PYTHONPATH=str(REPO_ROOT / "service"), **extra)
    return env


def _start(tmp_path: Path, **extra: str) -> subprocess.Popen:
    uwsgi = require_tool("uwsgi")
    return subprocess.Popen(["sh", "-c", f'exec "{uwsgi}" --ini "{UWSGI_INI}" 3>&1'],
                            env=_env(tmp_path, **extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)


def _stop(proc: subprocess.Popen) -> tuple[str, str]:
    """Graceful stop (TERM, uwsgi.ini) of the process we started, by its PID; returns
    ("", stderr): stdout is left to whoever reads it."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=40)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    err = proc.stderr.read().decode() if proc.stderr and not proc.stderr.closed else ""
    return "", err


def _ready(sock: Path) -> bool:
    try:
        return check(str(sock), "/pc-builder-app/readyz") == 200
    except OSError:
        return False


class _Lines:
    """Collects a pipe's lines while the process runs."""

    def __init__(self, stream):
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for raw in stream:
            self.lines.append(raw.decode())

    def join(self) -> list[str]:
        self._thread.join(timeout=40)
        return [line.rstrip("\n") for line in self.lines if line.strip()]


def _uwsgi_logged(lines: _Lines, uri: str) -> bool:
    return any('"uwsgi.request"' in l and f'"uri":"{uri}"' in l for l in list(lines.lines))


@pytest.fixture
def served(tmp_path):
    """(stdout lines, stderr text, tmp_path) of a stdout-mode uWSGI that answered two requests."""
    proc = _start(tmp_path, LOG_TO="stdout")
    out = _Lines(proc.stdout)
    try:
        wait_until(lambda: _ready(tmp_path / "app.sock"), timeout=30, what="uWSGI ready")
        assert check(str(tmp_path / "app.sock"), "/pc-builder-app/api/components/1") == 200
        # uWSGI logs a request after answering it: wait for the line, then stop.
        wait_until(lambda: _uwsgi_logged(out, "/pc-builder-app/api/components/1"), timeout=10,
                   what="the request's uwsgi.request line")
    finally:
        _out, err = _stop(proc)
    return out.join(), err, tmp_path


def test_every_stdout_line_is_one_json_object_of_a_layer(served):
    lines, _err, _ = served
    records = [json.loads(line) for line in lines]  # raises on any line that is not JSON
    assert all(isinstance(r, dict) for r in records)
    layers = {r["layer"] for r in records}
    assert {"uwsgi", "app"} <= layers, layers
    events = {r["event"] for r in records}
    assert {"uwsgi.server", "uwsgi.request", "request.finished"} <= events


def test_the_app_lines_are_not_wrapped_by_uwsgi(served):
    lines, _err, _ = served
    server = [json.loads(l) for l in lines if '"uwsgi.server"' in l]
    assert server and not any('"layer":"app"' in r["msg"] or '\\"layer\\"' in r["msg"] for r in server)
    finished = [json.loads(l) for l in lines if '"request.finished"' in l]
    paths = {r["path"] for r in finished}
    assert "/pc-builder-app/api/components/1" in paths
    uwsgi_ids = {json.loads(l)["request_id"] for l in lines if '"uwsgi.request"' in l}
    api = [r for r in finished if r["path"] == "/pc-builder-app/api/components/1"]
    assert api[0]["request_id"] in uwsgi_ids  # the same request, both layers


def test_nothing_is_written_under_log_dir(served):
    _lines, _err, tmp_path = served
    log_dir = tmp_path / "log"
    assert not log_dir.exists() or not any(p.is_file() for p in log_dir.rglob("*"))


def test_stderr_holds_only_what_uwsgi_prints_before_its_logging_starts(served):
    _lines, err, _ = served
    assert all(line.startswith("[uWSGI]") or line.startswith("[log-encoder]")
               for line in err.splitlines() if line.strip()), err


def test_an_unknown_log_to_is_refused_in_one_line(tmp_path):
    proc = _start(tmp_path, LOG_TO="stdot")
    try:
        _out, err = (b.decode() for b in proc.communicate(timeout=30))
    finally:
        _stop(proc)
    assert proc.returncode != 0
    assert "LOG_TO-must-be-files-or-stdout" in err
    assert not (tmp_path / "app.sock").exists() or not _ready(tmp_path / "app.sock")


def test_the_default_is_still_files(tmp_path):
    """Unset LOG_TO: the app's and uWSGI's lines go to their files, as before."""
    (tmp_path / "log" / "uwsgi").mkdir(parents=True)  # ./stack makes it before starting uWSGI
    proc = _start(tmp_path)
    try:
        wait_until(lambda: _ready(tmp_path / "app.sock"), timeout=30, what="uWSGI ready")
    finally:
        _stop(proc)
    assert not proc.stdout.read().strip()
    app_lines = (tmp_path / "log" / "app" / "pod-1.log").read_text().splitlines()
    assert any(json.loads(l)["event"] == "request.finished" for l in app_lines)
    assert (tmp_path / "log" / "uwsgi" / "pod-1.log").read_text().strip()
