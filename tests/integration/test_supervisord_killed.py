"""supervisord killed with SIGKILL: its programs stop with it (the kernel's parent-death
signal), gracefully, and ./stack status / down / up say what is still stopping and finish
the job, instead of "not running" while NGINX and uWSGI serve on."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from stackctl.leftovers import alive
from tests.support.stack import ROOT, STACK, start_stack, stop_stack
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


class SlowUpload:
    """A POST whose body NGINX is still reading, one byte a second: a request in flight,
    which NGINX's graceful stop (QUIT) waits for."""

    def __init__(self, port: int, size: int = 64):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.sendall(f"POST /pc-builder-app/api/builds HTTP/1.1\r\nHost: localhost\r\n"
                          f"X-Request-ID: slow-upload-0001\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {size}\r\nConnection: close\r\n\r\n".encode())
        self.left, self.done = size, threading.Event()
        self.thread = threading.Thread(target=self._trickle, daemon=True)
        self.thread.start()

    def _trickle(self):
        while not self.done.wait(1.0) and self.left > 1:
            self.sock.sendall(b" ")
            self.left -= 1

    def close(self):
        self.done.set()
        self.thread.join()
        self.sock.close()

    def finish(self) -> bytes:
        """Sends the rest of the body; NGINX's whole answer."""
        self.done.set()
        self.thread.join()
        self.sock.sendall(b" " * self.left)
        answer = b""
        while chunk := self.sock.recv(65536):
            answer += chunk
        self.sock.close()
        return answer


def _tree(pid: int) -> list[int]:
    """pid and its descendants (NGINX's and uWSGI's workers), as the kernel lists them."""
    try:
        children = (Path("/proc") / str(pid) / "task" / str(pid) / "children").read_text().split()
    except OSError:
        return [pid]
    return [pid, *(p for child in children for p in _tree(int(child)))]


def _programs(stack) -> dict[str, int]:
    return {p["name"]: p["pid"] for p in stack.status()["processes"]}


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def _kill_supervisord(stack) -> tuple[list[int], dict[str, int]]:
    """SIGKILL to supervisord; every PID of the stack (programs and their workers)."""
    programs = _programs(stack)
    pids = [pid for main in programs.values() for pid in _tree(main)]
    supervisord = int((stack.run_dir / "supervisord.pid").read_text())
    os.kill(supervisord, signal.SIGKILL)
    wait_until(lambda: not alive(supervisord), 10, "supervisord gone")
    return pids, programs


def test_programs_stop_with_a_killed_supervisord_and_stack_commands_say_so(tmp_path):
    stack = start_stack(tmp_path)
    upload, commands = None, []
    try:
        upload = SlowUpload(stack.port)
        pids, programs = _kill_supervisord(stack)

        # the kernel told each program to stop: the idle uWSGI instances are gone by
        # themselves, NGINX closed its listener and finishes the upload it is reading
        wait_until(lambda: not alive(programs["app1"]) and not alive(programs["app2"]), 30,
                   "uWSGI instances stopping on their own")
        wait_until(lambda: _refused(stack.port), 10, "NGINX closing its listener")
        assert alive(programs["nginx"])

        status = stack.run("status", check=False)
        assert status.returncode == 1
        assert "supervisord of this RUN_DIR is gone" in status.stdout
        assert f"nginx (pid {programs['nginx']})" in status.stdout
        assert "app1" not in status.stdout  # gone already
        report = stack.status()
        assert report["running"] is False
        assert report["leftovers"] == [{"name": "nginx", "pid": programs["nginx"]}]

        down = subprocess.Popen([str(STACK), "down"], env=stack.env, cwd=ROOT, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        commands.append(down)
        first = down.stdout.readline()
        assert "still run: nginx" in first and "stopping them" in first, first
        answer = upload.finish()  # the request in flight gets its answer, then NGINX exits
        upload = None
        assert answer.startswith(b"HTTP/1.1 "), answer[:200]
        rest = down.communicate(timeout=60)[0]
        assert down.returncode == 0 and rest.strip().endswith("stack: stopped"), rest
        assert [pid for pid in pids if alive(pid)] == []

        # nothing left: status and down say so plainly, and up gets its ports
        assert stack.run("status", check=False).stdout.startswith("stack: not running (RUN_DIR")
        assert "no stack running" in stack.run("down").stdout
        stack.run("up", "-d", timeout=180)
        assert stack.request("/pc-builder-app/readyz").status == 200

        # up after a SIGKILL stops what is still stopping, then starts
        upload = SlowUpload(stack.port)
        pids, programs = _kill_supervisord(stack)
        up = subprocess.Popen([str(STACK), "up", "-d"], env=stack.env, cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        commands.append(up)
        first = up.stdout.readline()
        assert f"nginx (pid {programs['nginx']})" in first and "stopping them" in first, first
        upload.finish()
        upload = None
        out = up.communicate(timeout=180)[0]
        assert up.returncode == 0 and "ready:" in out, out
        assert [pid for pid in pids if alive(pid)] == []
        assert stack.status()["running"] is True
        assert stack.request("/pc-builder-app/readyz").status == 200
    finally:
        if upload is not None:
            upload.close()
        for command in commands:  # a ./stack up still running would start a stack after us
            try:
                command.communicate(timeout=180)
            except subprocess.TimeoutExpired:
                command.kill()
                command.communicate()
        stop_stack(stack)
