"""Faults on a real stack: a uWSGI instance killed under load, a second stack beside the
first, a port already taken, Loki unreachable at up. Loki and Alloy themselves failing
(stopped, hanging, restarted) are in tests/real/test_loki_faults.py."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from stackctl import tools

from tests.support.env import free_port
from tests.support.stack import STACK, ROOT, start_stack, stop_stack

pytestmark = pytest.mark.integration


def _process(stack, name):
    return next(p for p in stack.status()["processes"] if p["name"] == name)


def test_killing_one_uwsgi_instance_during_a_stream_of_gets_fails_no_get(stack):
    victim = _process(stack, "app1")
    assert victim["state"] == "RUNNING" and victim["health"] == "ready"
    results, stop = [], threading.Event()

    def stream():
        n = 0
        while not stop.is_set():
            n += 1
            req = urllib.request.Request(stack.url + "/pc-builder-app/main",
                                         headers={"X-Request-ID": f"kill-stream-{n:06d}"})
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    results.append(resp.status)
            except urllib.error.HTTPError as exc:
                results.append(exc.code)
            except OSError as exc:
                results.append(repr(exc))
            time.sleep(0.01)

    workers = [threading.Thread(target=stream) for _ in range(3)]
    for w in workers:
        w.start()
    time.sleep(1.0)
    os.kill(victim["pid"], signal.SIGKILL)
    time.sleep(3.0)
    stop.set()
    for w in workers:
        w.join()

    assert len(results) > 50
    assert [r for r in results if r != 200] == []
    # supervisord brought the instance back by itself, under a new PID
    back = stack.wait_for(lambda: (p := _process(stack, "app1"))["health"] == "ready" and p, timeout=30,
                          what="app1 back and ready")
    assert back["pid"] != victim["pid"]
    served = {r["instance"] for r in stack.records("uwsgi") if r.get("request_id", "").startswith("kill-stream")}
    assert "app2" in served


def test_a_second_stack_runs_beside_the_first(stack, tmp_path):
    second = start_stack(tmp_path)
    try:
        assert second.port != stack.port
        rid = "second-stack-0001"
        assert second.request("/pc-builder-app/main", headers={"X-Request-ID": rid}).status == 200
        assert stack.request("/pc-builder-app/main").status == 200
        second.wait_for(lambda: any(r["request_id"] == rid for r in second.records("nginx")), what="line")
        assert not any(r["request_id"] == rid for r in stack.records("nginx"))
    finally:
        stop_stack(second)
    assert second.status()["running"] is False
    assert stack.status()["running"] is True


def test_up_refuses_a_port_that_is_taken_with_a_clear_error(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {**os.environ, "HTTP_PORT": str(port), "LOG_DIR": str(tmp_path / "log"),
               "DATA_DIR": str(tmp_path / "data"), "RUN_DIR": str(tmp_path / "run")}
        result = subprocess.run([str(STACK), "up", "-d"], env=env, cwd=ROOT, capture_output=True,
                                text=True, timeout=60)
    assert result.returncode != 0
    assert f"127.0.0.1:{port}" in result.stderr and "HTTP_PORT" in result.stderr
    assert not (tmp_path / "run" / "supervisord.pid").exists()


@pytest.mark.parametrize("name,value,message", [
    ("HTTP_PORT", "eighty", "HTTP_PORT=eighty is not a whole number"),
    ("APP_INSTANCES", "0", "APP_INSTANCES=0 is out of range"),
])
def test_up_rejects_bad_settings_clearly(tmp_path, name, value, message):
    env = {**os.environ, "HTTP_PORT": str(free_port()), "RUN_DIR": str(tmp_path / "run"), name: value}
    result = subprocess.run([str(STACK), "up", "-d"], env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert message in result.stderr


def test_reload_is_graceful_and_keeps_the_instances_serving(stack):
    before = {p["name"]: p["pid"] for p in stack.status()["processes"]}
    result = stack.run("reload")
    assert "app1: graceful reload requested" in result.stdout
    # uWSGI re-executes the master in place (same PID) and respawns the workers
    stack.wait_for(lambda: any("gracefully (RE)spawned uWSGI master" in r.get("msg", "")
                               for r in stack.records("uwsgi", "app1") if r["event"] == "uwsgi.server"),
                   what="uWSGI reload message")
    assert stack.request("/pc-builder-app/main").status == 200
    after = {p["name"]: p["pid"] for p in stack.status()["processes"]}
    assert after == before  # masters stay, only workers are recycled


def test_with_loki_url_but_no_alloy_stack_says_so_and_carries_on(tmp_path):
    running = start_stack(tmp_path, LOKI_URL="http://127.0.0.1:9/loki/api/v1/push")
    try:
        assert "ALLOY_BIN=off" not in running.start_output
        assert "so NGINX's, uWSGI's and the browser's lines stay in the local files only" in running.start_output
        # nothing listens on port 9: said plainly at up, and the stack starts anyway
        assert ("stack: warning: Loki at http://127.0.0.1:9 is unreachable (connection refused);"
                " starting anyway") in running.start_output
        assert "alloy" not in {p["name"] for p in running.status()["processes"]}
        assert running.request("/pc-builder-app/main").status == 200
    finally:
        stop_stack(running)


def test_nginx_retries_a_dead_instance_on_the_other_one_under_the_same_request_id(stack):
    import sys

    ctl = [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(stack.run_dir / "supervisord.conf")]
    subprocess.run([*ctl, "stop", "app1"], check=True, capture_output=True, timeout=60)
    try:
        ids = [f"retry-{i:03d}-{os.getpid()}" for i in range(6)]
        for rid in ids:  # round robin sends one of the first requests to the dead app1
            assert stack.request("/pc-builder-app/main", headers={"X-Request-ID": rid}).status == 200
        def all_logged():
            found = [r for r in stack.records("nginx") if r["request_id"] in ids]
            return found if len(found) == len(ids) else None

        lines = stack.wait_for(all_logged, what="nginx lines")
        retried = [r for r in lines if ", " in r["upstream_addr"]]
        assert retried, [r["upstream_addr"] for r in lines]
        first, second = retried[0]["upstream_addr"].split(", ")
        assert first.endswith("app1.sock") and second.endswith("app2.sock")
        assert retried[0]["upstream_status"].endswith("200")
        uwsgi = [r for r in stack.records("uwsgi") if r.get("request_id") == retried[0]["request_id"]]
        assert [r["instance"] for r in uwsgi] == ["app2"]
    finally:
        subprocess.run([*ctl, "start", "app1"], check=True, capture_output=True, timeout=60)
    stack.wait_for(lambda: _process(stack, "app1")["health"] == "ready", timeout=30, what="app1 back")


def test_up_reports_an_app_that_fails_to_start_and_leaves_nothing_running(tmp_path):
    # a uWSGI config the real uwsgi rejects: the instances exit at once
    bad_ini = tmp_path / "broken.ini"
    bad_ini.write_text("[uwsgi]\nstrict = true\nno-such-option = 1\n")
    fake_uwsgi = tmp_path / "uwsgi"
    real = tools.path("uwsgi")
    fake_uwsgi.write_text(f"#!/bin/sh\nexec {real} --ini {bad_ini}\n")
    fake_uwsgi.chmod(0o755)
    env = {**os.environ, "HTTP_PORT": str(free_port()), "HTTPS_PORT": str(free_port()),
           "LOG_DIR": str(tmp_path / "log"), "DATA_DIR": str(tmp_path / "data"),
           "RUN_DIR": str(tmp_path / "run"), "UWSGI_BIN": str(fake_uwsgi)}
    result = subprocess.run([str(STACK), "up", "-d"], env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert "the stack failed to start" in result.stderr
    # whichever instance supervisord gives up on first is reported, with its own stderr
    assert re.search(r"app[12] is (BACKOFF|FATAL)", result.stderr), result.stderr
    assert "unknown config directive: no-such-option" in result.stderr  # from appN.err
    pid_file = tmp_path / "run" / "supervisord.pid"
    assert not pid_file.exists() or not _alive(int(pid_file.read_text()))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def test_uwsgi_bin_setting_does_not_leak_into_uwsgi_options(tmp_path):
    """uWSGI takes every UWSGI_<NAME> variable as an option: ./stack's UWSGI_BIN must
    not reach it (strict mode would refuse "bin" and the instances would never start)."""
    running = start_stack(tmp_path, UWSGI_BIN=str(tools.path("uwsgi")), APP_INSTANCES="1")
    try:
        assert running.request("/pc-builder-app/readyz").status == 200
    finally:
        stop_stack(running)
