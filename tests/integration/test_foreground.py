"""`./stack up` in the foreground: shows every layer's lines, Ctrl-C stops everything."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import urllib.request

import pytest

from stackctl.leftovers import alive
from tests.support.stack import ROOT, STACK, private_env

pytestmark = pytest.mark.integration


def test_foreground_up_prints_all_layers_and_ctrl_c_stops_it(tmp_path):
    env = private_env(tmp_path)
    port = int(env["HTTP_PORT"])
    proc = subprocess.Popen([str(STACK), "up"], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    output: list[str] = []
    ready, seen = threading.Event(), threading.Event()
    rid = "foreground-0001"

    def read():
        for line in proc.stdout:
            output.append(line)
            if "following all layers" in line:
                ready.set()
            if rid in line and "nginx.access" in line:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(120), "".join(output)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/pc-builder-app/main", headers={"X-Request-ID": rid})
        assert urllib.request.urlopen(req, timeout=10).status == 200
        assert seen.wait(10), "".join(output)
        supervisord = int((tmp_path / "run" / "supervisord.pid").read_text())
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    reader.join(5)
    text = "".join(output)
    for layer in ("nginx/", "uwsgi/app", "app/app"):
        assert any(layer in line and rid in line for line in output), (layer, text)
    assert "stopped" in text
    # a zombie counts as stopped: it has exited, and only init (its parent once it
    # daemonized) has yet to collect its status, which some inits do a second later
    assert not alive(supervisord), "supervisord survived Ctrl-C"
