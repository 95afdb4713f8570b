"""What an operator gets from ./stack for a bad setting, a bad path or an odd call:
one line naming the problem, exit 1, no Python traceback, nothing started; and commands on
a running stack use that stack's own settings, whatever the calling shell holds."""
from __future__ import annotations

import subprocess

import pytest

from tests.support.stack import ROOT, STACK, private_env, start_stack, stop_stack

pytestmark = pytest.mark.integration

# (setting, value, the start of the one line); "{tmp}" is the test's private folder
BAD_UP = [
    ("HTTP_PORT", "eighty", "HTTP_PORT=eighty is not a whole number"),
    ("HTTPS_PORT", "0", "HTTPS_PORT=0 is out of range (1..65535)"),
    ("APP_INSTANCES", "0", "APP_INSTANCES=0 is out of range (1..32)"),
    ("UWSGI_THREADS", "many", "UWSGI_THREADS=many is not a whole number"),
    ("LOG_LEVEL", "LOUD", "LOG_LEVEL=LOUD is not a log level"),
    ("HTTPS_REDIRECT", "maybe", "HTTPS_REDIRECT=maybe is neither on nor off"),
    ("LOKI_URL", "not-a-url", "LOKI_URL=not-a-url is not an http:// or https:// URL"),
    ("LOKI_URL", "http://127.0.0.1:3100/loki/api/v1/query", "LOKI_URL=http://127.0.0.1:3100/loki/api/v1/query"
     " is another Loki API path"),
    ("LOKI_TIMEOUT", "-1", "LOKI_TIMEOUT=-1 is not a positive number"),
    ("LOKI_BACKLOG_BYTES", "lots", "LOKI_BACKLOG_BYTES=lots is not a whole number"),
    ("DB_SLOW_MS", "slow", "DB_SLOW_MS=slow is not a number"),
    ("HTTP_ADDR", "not an addr", "HTTP_ADDR='not an addr' is not an IPv4 address"),
    ("HTTP_ADDR", "192.0.2.1", "HTTP_ADDR=192.0.2.1 is not an address of this machine"),  # TEST-NET-1
    ("STACK_START_TIMEOUT", "0", "STACK_START_TIMEOUT=0 is out of range"),
    ("TLS_SELF_SIGNED_DAYS", "-5", "TLS_SELF_SIGNED_DAYS=-5 is out of range"),
    ("LOG_DIR", "{tmp}/a-file", "LOG_DIR={tmp}/a-file is a file, not a directory"),
    ("DATA_DIR", "{tmp}/a-file", "DATA_DIR={tmp}/a-file is a file, not a directory"),
    ("RUN_DIR", "{tmp}/a-file", "RUN_DIR={tmp}/a-file is a file, not a directory"),
    ("LOG_DIR", "{tmp}/a-file/sub", "LOG_DIR={tmp}/a-file/sub cannot be created: {tmp}/a-file is a file"),
    ("LOG_DIR", "{tmp}/log-with-file", "LOG_DIR={tmp}/log-with-file: {tmp}/log-with-file/nginx is a file"),
    ("DATA_DIR", "/proc/pc-builder-test", "DATA_DIR=/proc/pc-builder-test cannot be created"),
    ("DATABASE_PATH", "{tmp}", "DATABASE_PATH={tmp} is a directory, not a file"),
    ("TLS_CERT", "{tmp}/missing.pem", "TLS_CERT={tmp}/missing.pem does not exist"),
    ("TLS_CERT", "{tmp}/a-file", "TLS_KEY={tmp}/data/tls/key.pem does not exist but TLS_CERT={tmp}/a-file"
     " does"),
    ("NGINX_BIN", "{tmp}/no-nginx", "nginx not found at {tmp}/no-nginx"),
    ("VENV_DIR", "{tmp}/a-file", "VENV_DIR={tmp}/a-file is a file, not a directory"),
]


def run_stack(*args: str, env: dict, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run([str(STACK), *args], env=env, cwd=ROOT, stdout=stdout, stderr=subprocess.PIPE,
                          text=True, timeout=120)


def one_line(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in (result.stdout or "") + result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("stack: ")
    return lines[0][len("stack: "):]


@pytest.mark.parametrize("name, value, expected", BAD_UP, ids=[f"{n}={v}" for n, v, _ in BAD_UP])
def test_a_bad_setting_or_path_is_one_line_exit_1_and_nothing_starts(tmp_path, name, value, expected):
    (tmp_path / "a-file").write_text("not a directory\n")
    (tmp_path / "log-with-file").mkdir()
    (tmp_path / "log-with-file" / "nginx").write_text("not a directory\n")
    before = (tmp_path / "a-file").read_bytes()
    env = private_env(tmp_path, **{name: value.format(tmp=tmp_path)})
    result = run_stack("up", "-d", env=env)
    assert result.returncode == 1
    assert one_line(result).startswith(expected.format(tmp=tmp_path))
    assert (tmp_path / "a-file").read_bytes() == before  # nothing the user has is written over
    assert not (tmp_path / "run" / "supervisord.pid").exists()


def test_commands_without_a_stack_are_one_clear_line(tmp_path):
    env = private_env(tmp_path, HTTP_PORT="abc", LOG_LEVEL="LOUD")  # unrelated: ignored by these
    result = run_stack("logs", env=env)
    assert result.returncode == 1
    assert one_line(result) == f"LOG_DIR={tmp_path / 'log'} does not exist: no stack has logged there"
    result = run_stack("trace", env=env)
    assert result.returncode == 1
    assert one_line(result).startswith("trace needs a request id (the X-Request-ID header of a response)"
                                       " or --last")
    result = run_stack("down", env=env)
    assert result.returncode == 0 and "no stack running from" in result.stdout
    result = run_stack("logs", "-n", "-3", env=env)
    assert result.returncode == 2 and "'-3' is not a whole number (0 or more)" in result.stderr
    result = run_stack("logs", "--status", "600", env=env)
    assert result.returncode == 2 and "'600' is not a status" in result.stderr


def test_a_closed_stdout_is_no_traceback(tmp_path):
    """`./stack status | head -1`: the reader is gone before ./stack writes."""
    proc = subprocess.Popen([str(STACK), "status"], env=private_env(tmp_path), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    proc.stderr.close()
    assert "Traceback" not in err and "BrokenPipeError" not in err and err == ""


def wait_for_reloads(running, instance: str, count: int) -> None:
    running.wait_for(lambda: sum("gracefully (RE)spawned uWSGI master" in r.get("msg", "")
                                 for r in running.records("uwsgi", instance)) >= count,
                     timeout=30, what=f"{instance} reloaded {count} time(s)")


def test_commands_on_a_running_stack_use_its_settings_not_the_shells(tmp_path):
    running = start_stack(tmp_path / "s")
    try:
        wrong = {**running.env, "APP_INSTANCES": "3", "HTTP_PORT": "abc", "LOG_DIR": str(tmp_path / "nope")}
        result = run_stack("reload", env=wrong)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == ["stack: app1: graceful reload requested",
                                              "stack: app2: graceful reload requested"]
        assert "ignoring HTTP_PORT, APP_INSTANCES, LOG_DIR from the environment" in result.stderr
        for instance in ("app1", "app2"):
            wait_for_reloads(running, instance, 1)
        result = run_stack("reload", env={**running.env, "APP_INSTANCES": "1"})
        assert "stack: app2: graceful reload requested" in result.stdout  # not left on old code
        wait_for_reloads(running, "app2", 2)

        status = run_stack("status", env=wrong)
        assert status.returncode == 0 and f"127.0.0.1:{running.port}" in status.stdout
        logs = run_stack("logs", "-n", "3", env=wrong)
        assert logs.returncode == 0 and len(logs.stdout.splitlines()) == 3

        down = run_stack("down", env=wrong)
        assert down.returncode == 0 and "stopped" in down.stdout
        assert running.status()["running"] is False
    finally:
        stop_stack(running)
