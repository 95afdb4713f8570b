"""nginx/docker-entrypoint.d/40-log-rotation.sh on its own (`once`): bounded old files,
the reopen nudges, the sweep of gone instances' files, and clear errors for bad settings.
The same script runs in the nginx container and under ./stack (test_log_rotation.py
drives it under load)."""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from tests.support.env import clean_env
from tests.support.tools import REPO_ROOT, require_tool

SCRIPT = REPO_ROOT / "nginx" / "docker-entrypoint.d" / "40-log-rotation.sh"


def run_once(log_dir, **settings) -> subprocess.CompletedProcess:
    env = clean_env(LOG_DIR=str(log_dir), LOGROTATE_BIN=require_tool("logrotate"),
                    LOGROTATE_STATE=str(log_dir.parent / "state" / "logrotate.state"),
                    NGINX_PID=str(log_dir.parent / "nginx.pid"), **settings)
    return subprocess.run([str(SCRIPT), "once"], env=env, capture_output=True, text=True, timeout=60)


def fill(path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}\n" * (size // 3 + 1))


def test_keeps_at_most_log_keep_old_files(tmp_path):
    log = tmp_path / "log"
    for _ in range(5):
        for name in ("nginx/access.log", "app/app1.log", "browser/app1.log"):
            fill(log / name, 2048)
        result = run_once(log, LOG_MAX_BYTES="1024", LOG_KEEP="2")
        assert result.returncode == 0, result.stderr
        assert "failed" not in result.stderr, result.stderr
    for name in ("nginx/access.log", "app/app1.log", "browser/app1.log"):
        rotated = sorted(p.name for p in (log / name).parent.glob(f"{(log / name).name}.*"))
        assert rotated == [f"{(log / name).name}.1", f"{(log / name).name}.2"], name


def test_keeps_the_newest_log_keep_of_uwsgis_own_old_files(tmp_path):
    # uWSGI rotates its file itself, to <file>.<epoch>; the script only prunes
    log = tmp_path / "log"
    fill(log / "uwsgi" / "app1.log", 10)
    epochs = [1795683923 + 7 * n for n in range(6)]
    for epoch in epochs:
        fill(log / "uwsgi" / f"app1.log.{epoch}", 10)
    result = run_once(log, LOG_KEEP="2")
    assert result.returncode == 0, result.stderr
    left = sorted(p.name for p in (log / "uwsgi").iterdir())
    assert left == ["app1.log", f"app1.log.{epochs[-2]}", f"app1.log.{epochs[-1]}"]


def test_small_files_are_left_alone(tmp_path):
    log = tmp_path / "log"
    fill(log / "nginx" / "access.log", 100)
    assert run_once(log, LOG_MAX_BYTES="1024").returncode == 0
    assert sorted(p.name for p in (log / "nginx").iterdir()) == ["access.log"]


def test_nginx_gets_usr1_after_rotating(tmp_path):
    log = tmp_path / "log"
    fill(log / "nginx" / "access.log", 4096)
    # a stand-in for NGINX's master: records the signal it gets
    marker = tmp_path / "got-usr1"
    waiter = subprocess.Popen(["sh", "-c", f"trap 'touch {marker}; exit 0' USR1; "
                               "while :; do sleep 0.1; done"])
    try:
        time.sleep(0.3)  # let the shell install its trap before anything signals it
        (tmp_path / "nginx.pid").write_text(f"{waiter.pid}\n")
        assert run_once(log, LOG_MAX_BYTES="1024").returncode == 0
        assert waiter.wait(timeout=10) == 0
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert marker.exists()


def test_files_of_gone_instances_are_deleted(tmp_path):
    log = tmp_path / "log"
    old = time.time() - 3 * 3600
    gone = [log / "uwsgi" / "0123abcd.log", log / "uwsgi" / "0123abcd.log.1",
            log / "app" / "0123abcd.log", log / "app" / "0123abcd.log.3", log / "browser" / "0123abcd.log"]
    live = [log / "uwsgi" / "4567ef01.log", log / "app" / "4567ef01.log", log / "nginx" / "access.log"]
    for path in gone + live:
        fill(path, 10)
    for path in gone + [log / "nginx" / "access.log"]:
        os.utime(path, (old, old))
    assert run_once(log, LOG_STALE_MINUTES="60").returncode == 0
    assert [p for p in gone if p.exists()] == []
    assert [p for p in live if not p.exists()] == []
    # a uWSGI that were still alive but silent is told to reopen (and recreate) its file
    assert (log / "uwsgi" / "0123abcd.reopen").exists()
    # the trigger itself goes once it is stale and its log file stayed gone
    os.utime(log / "uwsgi" / "0123abcd.reopen", (old, old))
    assert run_once(log, LOG_STALE_MINUTES="60").returncode == 0
    assert not (log / "uwsgi" / "0123abcd.reopen").exists()


@pytest.mark.parametrize("name,value", [("LOG_MAX_BYTES", "lots"), ("LOG_MAX_BYTES", "0"),
                                        ("LOG_MAX_BYTES", "50M"),
                                        ("LOG_KEEP", "0"), ("LOG_KEEP", "two"),
                                        ("LOG_ROTATE_INTERVAL", "-1"), ("LOG_STALE_MINUTES", "1.5")])
def test_bad_settings_are_one_line_errors(tmp_path, name, value):
    result = run_once(tmp_path / "log", **{name: value})
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and f"{name}={value}" in result.stderr, result.stderr


def test_settings_reject_the_same_values_before_anything_starts():
    from stackctl.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match="LOG_MAX_BYTES=50M is not a whole number"):
        Settings.from_env({"LOG_MAX_BYTES": "50M"})
    with pytest.raises(SettingsError, match=r"LOG_KEEP=0 is out of range"):
        Settings.from_env({"LOG_KEEP": "0"})
    s = Settings.from_env({})
    assert (s.log_max_bytes, s.log_keep, s.log_rotate_interval, s.log_stale_minutes) == (52428800, 5, 30, 1440)
