"""Loki and Alloy configuration, checked by the real programs and for what the project means.

The real binaries (marker ``real``, tests/support/real.py) check what they can:
``loki -verify-config`` on both Loki configs; ``alloy fmt`` (syntax) and ``alloy validate``
(every component's arguments) on both Alloy configs; ``alloy run`` of config.alloy until
it is ready, and of kubernetes.alloy with the shared stages imported as the chart does,
which resolves every reference and the module, and stops only where a real cluster is
needed. What the configs must mean (retention, structured metadata, Drilldown, paths from
the environment) is read from the files. That Alloy's stages give each line the right
labels, metadata and timestamp is proven on delivered lines: tests/real/test_delivery.py.
"""
from __future__ import annotations

import re
import signal
import subprocess
import urllib.request

import pytest
import yaml

from tests.support.config_text import ENV_REF, expand_env, shared_block
from tests.support.env import free_port
from tests.support.real import binary
from tests.support.tools import REPO_ROOT
from tests.support.waiting import wait_until

LOKI_CONFIG = REPO_ROOT / "observability/loki/loki.yaml"
LOKI_SCALABLE = REPO_ROOT / "observability/loki/loki-scalable.yaml"
ALLOY_CONFIG = REPO_ROOT / "observability/alloy/config.alloy"
K8S_CONFIG = REPO_ROOT / "observability/alloy/kubernetes.alloy"
SHARED_BEGIN = "// >>> pc-builder shared stages"
SHARED_END = "// <<< pc-builder shared stages"
# what `./stack up` gives Loki (stackctl/render.py); the scalable config's S3 settings
STACK_ENV = {"LOKI_DATA_DIR": "/tmp/loki", "LOKI_LISTEN_ADDR": "127.0.0.1", "LOKI_HTTP_PORT": "3100",
             "LOKI_GRPC_PORT": "9096"}
S3_ENV = {"LOKI_S3_BUCKET": "b", "LOKI_S3_ENDPOINT": "e", "LOKI_S3_ACCESS_KEY_ID": "k",
          "LOKI_S3_SECRET_ACCESS_KEY": "s"}


# ------------------------------------------------------------------- Loki

def loki(env: dict[str, str] | None = None) -> dict:
    return yaml.safe_load(expand_env(LOKI_CONFIG.read_text(), env or {}))


def _duration_hours(value: str) -> float:
    units = {"h": 1, "d": 24, "w": 168, "m": 1 / 60}
    parts = re.findall(r"(\d+)([hdwm])", value)
    assert parts and "".join(n + u for n, u in parts) == value, f"not a simple duration: {value}"
    return sum(int(n) * units[u] for n, u in parts)


def test_loki_env_refs_have_defaults():
    refs = ENV_REF.findall(LOKI_CONFIG.read_text())
    assert refs, "expected env-driven settings (retention)"
    for name, default in refs:
        assert default, f"${{{name}}} has no default: Loki would get an empty value"
    assert "$" not in ENV_REF.sub("", LOKI_CONFIG.read_text()), "unsupported $ reference form"


def test_loki_core_settings():
    cfg = loki()
    assert cfg.get("target", "all") == "all"
    assert cfg["auth_enabled"] is False
    assert cfg["common"]["replication_factor"] == 1
    assert cfg["common"]["ring"]["kvstore"]["store"] == "inmemory"
    assert cfg["common"]["path_prefix"] == "/loki"
    fs = cfg["common"]["storage"]["filesystem"]
    assert fs["chunks_directory"].startswith("/loki/") and fs["rules_directory"].startswith("/loki/")
    assert cfg["analytics"]["reporting_enabled"] is False


def test_loki_schema_tsdb_v13():
    configs = loki()["schema_config"]["configs"]
    latest = configs[-1]
    assert latest["store"] == "tsdb"
    assert latest["schema"] == "v13"
    assert latest["object_store"] == "filesystem"
    assert latest["index"]["period"] == "24h"


def test_loki_structured_metadata_and_retention():
    cfg = loki()
    limits = cfg["limits_config"]
    assert limits["allow_structured_metadata"] is True
    assert _duration_hours(limits["retention_period"]) == 168
    compactor = cfg["compactor"]
    assert compactor["retention_enabled"] is True
    assert compactor["delete_request_store"] == "filesystem"
    assert compactor["working_directory"].startswith("/loki")


def test_loki_retention_follows_env():
    assert loki({"LOKI_RETENTION": "720h"})["limits_config"]["retention_period"] == "720h"


def test_duration_parser_rejects_garbage():
    with pytest.raises(AssertionError):
        _duration_hours("${LOKI_RETENTION:-168h}")


@pytest.mark.parametrize("path", [LOKI_CONFIG, LOKI_SCALABLE], ids=["single", "scalable"])
def test_logs_drilldown_is_on(path):
    """Grafana's Logs Drilldown: volume, detected levels, patterns (tests/real/test_drilldown.py)."""
    cfg = yaml.safe_load(expand_env(path.read_text(), S3_ENV))
    limits = cfg["limits_config"]
    assert limits["volume_enabled"] is True and limits["discover_log_levels"] is True
    assert limits["pattern_ingester_tokenizable_json_fields_append"] == "sql,error"
    # Patterns: the chart's Loki has cores of its own; one host's Loki runs them on LOKI_PATTERNS.
    assert cfg["pattern_ingester"]["enabled"] is (path == LOKI_SCALABLE)


@pytest.mark.parametrize("value, enabled", [("true", True), ("false", False)])
def test_one_hosts_patterns_follow_env(value, enabled):
    assert loki({"LOKI_PATTERNS": value})["pattern_ingester"]["enabled"] is enabled


@pytest.mark.parametrize("setting, rendered", [(None, "false"), ("on", "true"), ("off", "false")])
def test_stack_and_compose_hand_loki_the_patterns_switch(tmp_path, setting, rendered):
    from stackctl import render
    from stackctl.settings import Settings

    env = {"LOKI_BIN": str(tmp_path / "loki"), "RUN_DIR": str(tmp_path), "PROMETHEUS_BIN": "off"}
    conf = render.supervisord_conf(Settings.from_env({**env, **({"LOKI_PATTERNS": setting} if setting else {})}))
    assert f'LOKI_PATTERNS="{rendered}"' in conf
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["loki"]["environment"]["LOKI_PATTERNS"] == "${LOKI_PATTERNS:-false}"


def run_loki(path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([binary("loki"), f"-config.file={path}", "-config.expand-env=true", *args],
                          env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True, timeout=120)


@pytest.mark.real
@pytest.mark.parametrize("path,env,target", [
    (LOKI_CONFIG, {}, "all"),                      # compose: the defaults in the file
    (LOKI_CONFIG, STACK_ENV, "all"),               # ./stack
    (LOKI_SCALABLE, S3_ENV, "write"),              # Kubernetes: each simple-scalable target
    (LOKI_SCALABLE, S3_ENV, "read"),
    (LOKI_SCALABLE, S3_ENV, "backend"),
], ids=["compose", "stack", "scalable-write", "scalable-read", "scalable-backend"])
def test_loki_verifies_its_config(path, env, target):
    result = run_loki(path, env, f"-target={target}", "-verify-config")
    assert result.returncode == 0 and "config is valid" in result.stderr, result.stderr[-2000:]


@pytest.mark.real
def test_loki_verify_config_catches_a_misspelt_setting(tmp_path):
    """Negative control: what -verify-config finds."""
    broken = tmp_path / "loki.yaml"
    broken.write_text(LOKI_CONFIG.read_text().replace("volume_enabled:", "volume_enabeld:"))
    result = run_loki(broken, {}, "-verify-config")
    assert result.returncode != 0 and "volume_enabeld" in result.stderr, result.stderr[-2000:]


# ------------------------------------------------------------------ Alloy


def alloy_env(home, **extra: str) -> dict[str, str]:
    """Alloy's environment: ``home`` as its HOME, where it may keep caches (not the project)."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), **extra}


def alloy(home, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([binary("alloy"), *args], env=alloy_env(home, **(env or {})), cwd=home,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.real
@pytest.mark.parametrize("path", [ALLOY_CONFIG, K8S_CONFIG], ids=["compose", "kubernetes"])
def test_alloy_parses_and_validates_the_config(path, tmp_path):
    formatted = alloy(tmp_path, "fmt", str(path))
    assert formatted.returncode == 0, formatted.stderr
    validated = alloy(tmp_path, "validate", str(path))
    assert validated.returncode == 0, validated.stderr


@pytest.mark.real
def test_alloy_fmt_and_validate_catch_mistakes(tmp_path):
    """Negative controls: a brace too many, a misspelt argument."""
    braces = tmp_path / "braces.alloy"
    braces.write_text(ALLOY_CONFIG.read_text() + "\n}\n")
    assert alloy(tmp_path, "fmt", str(braces)).returncode != 0
    misspelt = tmp_path / "misspelt.alloy"
    misspelt.write_text(ALLOY_CONFIG.read_text().replace("sync_period", "sync_periode", 1))
    result = alloy(tmp_path, "validate", str(misspelt))
    assert result.returncode != 0 and "sync_periode" in result.stderr, result.stderr


@pytest.mark.real
def test_alloy_runs_the_compose_config_until_ready(tmp_path):
    """What compose and ./stack run: every component built, every reference found, ready."""
    port = free_port()
    (tmp_path / "log").mkdir()
    proc = subprocess.Popen([binary("alloy"), "run", f"--server.http.listen-addr=127.0.0.1:{port}",
                             "--disable-reporting", f"--storage.path={tmp_path / 'data'}", str(ALLOY_CONFIG)],
                            env=alloy_env(tmp_path, LOG_DIR=str(tmp_path / "log"),
                                          LOKI_URL=f"http://127.0.0.1:{free_port()}/loki/api/v1/push"),
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        def ready():
            if proc.poll() is not None:
                raise AssertionError(f"alloy exited: {proc.stderr.read()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as resp:
                    return resp.status == 200
            except OSError:
                return False

        wait_until(ready, 60, "Alloy's /-/ready", interval=0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_kubernetes_config(tmp_path, module: str) -> list[str]:
    """``alloy run`` of kubernetes.alloy with ``module`` as the chart's pcbuilder.alloy: it
    stops at its first evaluation (no cluster here). Its error lines."""
    (tmp_path / "pcbuilder.alloy").write_text(module)
    result = alloy(tmp_path, "run", f"--server.http.listen-addr=127.0.0.1:{free_port()}", "--disable-reporting",
                   f"--storage.path={tmp_path / 'data'}", str(K8S_CONFIG),
                   env={"PCBUILDER_ALLOY_MODULE": str(tmp_path / "pcbuilder.alloy")})
    assert result.returncode != 0
    return [line for line in result.stderr.splitlines() if "level=error" in line or line.startswith("Error:")
            if "could not perform the initial load successfully" not in line]  # the summary


@pytest.mark.real
def test_alloy_runs_the_kubernetes_config_up_to_the_cluster(tmp_path):
    """Every reference resolves and the shared stages import as a module and take the
    config's arguments: the one error is that no Kubernetes API is here."""
    errors = run_kubernetes_config(tmp_path, shared_block(ALLOY_CONFIG.read_text()))
    assert errors and all("unable to load in-cluster configuration" in line for line in errors), errors


@pytest.mark.real
def test_the_kubernetes_run_would_see_a_broken_module(tmp_path):
    """Negative control: a module Alloy cannot import is reported by the same run."""
    module = shared_block(ALLOY_CONFIG.read_text()) + '\nloki.echo "stray" {}\n'
    errors = run_kubernetes_config(tmp_path, module)
    assert any("only declare and import blocks are allowed in a module" in line for line in errors), errors


def test_alloy_paths_and_urls_from_env():
    src = ALLOY_CONFIG.read_text()
    assert 'coalesce(sys.env("LOG_DIR"), "/var/log/stack")' in src
    assert 'coalesce(sys.env("STACK_ENV"), "local")' in src
    # not the app's files: the app ships its own lines, tailing them too would duplicate them
    globs = re.findall(r'"__path__"\s*=\s*string\.format\("%s(/[^"]+)"', src)
    assert sorted(globs) == ["/browser/*.log", "/nginx/access.log", "/uwsgi/*.log"], globs
    assert not re.search(r'"/var/log/stack/', src), "hard-coded log path (must come from LOG_DIR)"
    urls = re.findall(r"\burl\s*=\s*(.+)", src)
    assert urls == ['coalesce(sys.env("LOKI_URL"), "http://loki:3100/loki/api/v1/push")'], urls


def test_kubernetes_adds_no_label_of_its_own():
    """Container and pod only set defaults of `layer` and `instance`; the stream is dropped."""
    src = K8S_CONFIG.read_text()
    assert set(re.findall(r'target_label\s*=\s*"(\w+)"', src)) == {"__path__", "instance", "layer"}
    assert not re.search(r"stage\.(static_)?labels\b", src)
    assert re.search(r'stage\.label_drop\s*\{\s*values\s*=\s*\["stream"\]', src)


def test_the_chart_ships_the_same_shared_block():
    text = (REPO_ROOT / "deploy/helm/pc-builder/templates/_helpers.tpl").read_text()
    assert SHARED_BEGIN in text and SHARED_END in text
