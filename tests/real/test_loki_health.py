"""Compose's Loki health check, run the way the engine runs it, against the real Loki 3.7.

Loki's images since 3.6 are distroless: no shell, no wget. The check is the binary itself
(``loki -health``) in exec form, so the engine starts it directly. Here it runs with an
empty environment (no PATH, no shell to find anything with): it fails while no Loki
answers, passes once Loki started with compose's own arguments and config is ready, and
fails again when that Loki is gone. The one change to compose's line: the port, because the
test never touches a port it did not pick (3100 is compose's, inside its network)."""
from __future__ import annotations

import json
import os
import subprocess
from urllib.parse import urlsplit

import pytest

from tests.support.env import clean_env, free_port
from tests.support.real import binary
from tests.support.tools import REPO_ROOT, require_tool
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def loki_service() -> dict:
    """Compose's Loki service as compose itself resolves it (interpolated, normalised)."""
    result = subprocess.run(
        [require_tool("docker-compose"), "--project-directory", str(REPO_ROOT), "--env-file", os.devnull,
         "-f", str(REPO_ROOT / "docker-compose.yml"), "config", "--format", "json"],
        env=clean_env(GRAFANA_ADMIN_PASSWORD="unused"), cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["services"]["loki"]


def _host_path(service: dict, container_path: str) -> str:
    """The file compose mounts at ``container_path``."""
    for volume in service["volumes"]:
        if volume["target"] == container_path:
            return volume["source"]
    raise AssertionError(f"compose mounts nothing at {container_path}")


def test_compose_healthcheck_is_the_binary_in_exec_form(loki_service):
    test = loki_service["healthcheck"]["test"]
    assert test[0] == "CMD", "CMD-SHELL needs /bin/sh, which the image does not have"
    assert test[1] == "/usr/bin/loki"  # the image's entrypoint, the one program it holds
    assert "-health" in test[2:]
    url = next(a.split("=", 1)[1] for a in test[2:] if a.startswith("-health.url="))
    assert urlsplit(url).path == "/ready"
    assert urlsplit(url).port == int(loki_service["expose"][0]) == 3100  # loki.yaml's default


def test_compose_healthcheck_follows_a_real_loki(tmp_path, loki_service):
    loki = binary("loki")
    port, grpc_port = free_port(), free_port()
    check_argv = [loki, *(a.replace("127.0.0.1:3100/", f"127.0.0.1:{port}/")
                          for a in loki_service["healthcheck"]["test"][2:])]

    def check() -> subprocess.CompletedProcess:
        return subprocess.run(check_argv, env={}, capture_output=True, text=True, timeout=15)

    before = check()
    assert before.returncode == 1 and "Health check failed" in before.stderr, before

    config = _host_path(loki_service, "/etc/loki/loki.yaml")
    command = [a.replace("/etc/loki/loki.yaml", config) for a in loki_service["command"]]
    env = {**loki_service.get("environment", {}),
           "LOKI_DATA_DIR": str(tmp_path / "loki"), "LOKI_LISTEN_ADDR": "127.0.0.1",
           "LOKI_HTTP_PORT": str(port), "LOKI_GRPC_PORT": str(grpc_port)}
    with open(tmp_path / "loki.log", "wb") as log:
        server = subprocess.Popen([loki, *command], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        passed = wait_until(lambda: (lambda r: r if r.returncode == 0 else None)(check()), 90,
                            "the health check to pass", interval=0.5)
        assert "Loki is healthy" in passed.stdout
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    after = check()
    assert after.returncode == 1 and "Health check failed" in after.stderr, after
