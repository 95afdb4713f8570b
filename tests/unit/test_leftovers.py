"""stackctl.leftovers on real processes standing in for a dead supervisord's programs: found
by this RUN_DIR's marker only, stopped with their own signal, killed after their stop wait."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from stackctl import leftovers
from tests.support.waiting import wait_until


def _conf(run_dir, **programs):
    text = "".join(f"[program:{name}]\n{body}\n" for name, body in programs.items())
    (run_dir / "supervisord.conf").write_text(text)


def _found(run_dir, n: int = 1) -> list:
    """What find() sees once the spawned shells have exec'd (until then /proc shows the
    parent's environment, without the marker)."""
    def found():
        programs = leftovers.find(run_dir)
        return programs if len(programs) == n else None
    return wait_until(found, 5, f"{n} leftover program(s) in {run_dir}")


@pytest.fixture
def spawn():
    started = []

    def run(run_dir, name, script):
        env = {"SUPERVISOR_SERVER_URL": f"unix://{run_dir / 'supervisor.sock'}",
               "SUPERVISOR_PROCESS_NAME": name, "PATH": "/usr/bin:/bin"}
        proc = subprocess.Popen(["sh", "-c", script], env=env, start_new_session=True)
        started.append(proc)
        return proc

    yield run
    for proc in started:  # the shell and whatever it started (its group), by PID
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def test_finds_only_this_run_dirs_programs_and_stops_them_with_their_signal(tmp_path, spawn):
    mine, other = tmp_path / "run", tmp_path / "other"
    mine.mkdir(), other.mkdir()
    _conf(mine, app1="command=uwsgi --ini x\nstopsignal=INT\nstopwaitsecs=20")
    # exits 0 on INT only: TERM or KILL would not be the program's own stop
    app1 = spawn(mine, "app1", "trap 'exit 0' INT; while :; do sleep 0.1; done")
    stranger = spawn(other, "app1", "while :; do sleep 0.1; done")
    found = _found(mine)
    _found(other)
    assert [(f.name, f.pid, f.stopsignal, f.stopwait, f.signalled) for f in found] == \
        [("app1", app1.pid, "INT", 20.0, False)]
    leftovers.stop(found)
    assert app1.wait(5) == 0
    assert leftovers.alive(stranger.pid)
    assert [f.pid for f in leftovers.find(other)] == [stranger.pid]


def test_one_that_outlasts_its_stop_wait_is_killed_with_its_workers(tmp_path, spawn):
    _conf(tmp_path, app1="command=uwsgi\nstopsignal=TERM\nstopwaitsecs=1")
    app1 = spawn(tmp_path, "app1", "trap '' TERM; sleep 300 & wait")
    # once the shell has started its worker
    (found,) = wait_until(lambda: [f for f in leftovers.find(tmp_path) if len(f.tree) == 2], 5,
                          "the worker")
    worker = found.tree[1]
    leftovers.stop([found])
    assert app1.wait(5) == -9
    assert not leftovers.alive(worker)


def test_the_kernels_stop_signal_is_not_sent_twice(tmp_path, spawn):
    """--pdeathsig in its command: the kernel signalled it when supervisord died, so ./stack
    only waits (a second TERM can turn uWSGI's graceful stop into a brutal one)."""
    _conf(tmp_path, app1="command=/usr/bin/setpriv --pdeathsig TERM -- uwsgi\nstopsignal=TERM\n"
                         "stopwaitsecs=1")
    app1 = spawn(tmp_path, "app1", "while :; do sleep 0.1; done")  # TERM would end it at once
    (found,) = _found(tmp_path)
    assert found.signalled
    leftovers.stop([found])
    assert app1.wait(5) == -9  # killed after its stop wait, never sent TERM


def test_nginx_is_found_by_its_pid_file_and_command_line(tmp_path, spawn):
    conf = tmp_path / "nginx.conf"
    nginx = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "-c", str(conf)])
    try:
        (tmp_path / "nginx.pid").write_text(f"{nginx.pid}\n")
        assert [(f.name, f.pid) for f in leftovers.find(tmp_path)] == [("nginx", nginx.pid)]
        (tmp_path / "nginx.pid").write_text(f"{spawn(tmp_path.parent, 'x', 'sleep 300').pid}\n")
        assert leftovers.find(tmp_path) == []  # a PID file naming some other process
    finally:
        nginx.kill()
        nginx.wait()


def _ignores_sigint(**popen) -> bool:
    status = subprocess.run(["grep", "^SigIgn:", "/proc/self/status"], capture_output=True,
                            text=True, check=True, **popen).stdout
    return bool(int(status.split()[1], 16) & (1 << (signal.SIGINT - 1)))


def test_the_programs_tests_start_can_be_stopped_with_int_however_the_suite_started():
    """A shell's background job starts with SIGINT ignored, which its programs inherit;
    tests/conftest.py sets it back, or the INT stops above would wait and kill."""
    assert _ignores_sigint(preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert not _ignores_sigint()
