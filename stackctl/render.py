"""Renders the shared config files for a local stack into RUN_DIR.

NGINX's template is the file compose mounts; it is rendered here the way the official
image's envsubst step renders it (only ``${NAME}`` of variables we define), so both
runners read the same configuration.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from pcbuilder.loki_url import push_url

from . import tools
from .settings import ROOT, Settings, SettingsError

NGINX_TEMPLATE = ROOT / "nginx" / "nginx.conf.template"
UWSGI_INI = ROOT / "service" / "uwsgi.ini"
STATIC_DIR = ROOT / "service" / "pcbuilder" / "static"
# The nginx image runs these before NGINX starts; ./stack runs the same scripts.
TLS_CERT_SCRIPT = ROOT / "nginx" / "docker-entrypoint.d" / "20-tls-cert.sh"
BASIC_AUTH_SCRIPT = ROOT / "nginx" / "docker-entrypoint.d" / "30-basic-auth.sh"
# Rotates every layer's log files; the nginx image starts it too.
LOG_ROTATION_SCRIPT = ROOT / "nginx" / "docker-entrypoint.d" / "40-log-rotation.sh"
ALLOY_CONFIG = ROOT / "observability" / "alloy" / "config.alloy"
LOKI_CONFIG = ROOT / "observability" / "loki" / "loki.yaml"
LOKI_RULES_DIR = ROOT / "observability" / "loki" / "rules"
# Prometheus and Alertmanager read no environment: their files are templates (docs/alerts.md)
PROMETHEUS_TEMPLATE = ROOT / "observability" / "prometheus" / "prometheus.yml.template"
PROMETHEUS_RULE_TEMPLATES = ROOT / "observability" / "prometheus" / "rules"
ALERTMANAGER_TEMPLATE = ROOT / "observability" / "alertmanager" / "alertmanager.yml.template"
#: ALERT_WEBHOOK_URL unset: the webhook receiver is not routed to, but needs a URL to load
UNUSED_WEBHOOK = "http://127.0.0.1:1/unused"
_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def substitute(template: str, values: dict[str, str]) -> str:
    """envsubst with an explicit variable list: unknown ``${NAME}`` is an error, not ''."""
    missing = sorted(set(_PLACEHOLDER.findall(template)) - set(values))
    if missing:
        raise KeyError(f"template needs values for: {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def nginx_values(s: Settings) -> dict[str, str]:
    # Why max_fails=2 fail_timeout=5s: the upstream block of the template.
    upstreams = " ".join(
        f"server unix:{s.socket_path(name)} max_fails=2 fail_timeout=5s;" for name in s.instances
    )
    return {
        "HTTP_ADDR": s.http_addr,
        "HTTP_PORT": str(s.http_port),
        "HTTPS_PORT": str(s.https_port),
        "HTTPS_REDIRECT": "on" if s.https_redirect else "off",
        "HTTPS_REDIRECT_PORT": str(s.https_port),
        "TLS_CERT": str(s.tls_cert),
        "TLS_KEY": str(s.tls_key),
        "LOG_DIR": str(s.log_dir),
        "NGINX_ACCESS_LOG": s.nginx_access_log or f"{s.log_dir}/nginx/access.log stack_json",
        "NGINX_API_RATE": s.nginx_api_rate,
        "STATIC_DIR": str(STATIC_DIR),
        "SERVER_NAME": s.server_name,
        # "off", or (auth on) any other value; compose passes the host path the same way.
        "BASIC_AUTH_FILE": str(s.basic_auth_file or "off"),
        "BASIC_AUTH_USER_FILE": str(s.basic_auth_file or os.devnull),
        "UPSTREAM_SERVERS": upstreams,
        # the unix sockets above are fixed, so the resolver is never asked
        "NGINX_RESOLVER": "127.0.0.1",
        "NGINX_PID": str(s.run_dir / "nginx.pid"),
        "NGINX_TEMP": str(s.run_dir / "nginx-temp"),
        "NGINX_USER": s.user,
    }


def nginx_conf(s: Settings) -> str:
    return substitute(NGINX_TEMPLATE.read_text(), nginx_values(s))


def alerting_values(s: Settings) -> dict[str, str]:
    """The values of the Prometheus and Alertmanager templates (render-config.sh takes the
    same names from the environment)."""
    return {
        "ALERT_EVAL_INTERVAL": s.alert_eval_interval,
        "ALERT_FOR": s.alert_for,
        "ALERT_BURN_FOR": s.alert_burn_for,
        "SLO_AVAILABILITY": s.slo_availability,
        "SLO_LATENCY": s.slo_latency,
        "SLO_LATENCY_THRESHOLD": s.slo_latency_threshold,
        "ALERT_RUNBOOK_URL": s.alert_runbook_url,
        "GRAFANA_URL": s.grafana_url,
        "PROMETHEUS_RULES_DIR": str(s.run_dir / "prometheus" / "rules"),
        "ALERTMANAGER_ADDR": f"127.0.0.1:{s.alertmanager_port}",
        "ALERT_GROUP_WAIT": s.alert_group_wait,
        "ALERT_GROUP_INTERVAL": s.alert_group_interval,
        "ALERT_RECEIVER": "webhook" if s.alert_webhook_url else "keep",
        "ALERT_WEBHOOK_URL": s.alert_webhook_url or UNUSED_WEBHOOK,
    }


def prometheus_rule_templates() -> list:
    return sorted(PROMETHEUS_RULE_TEMPLATES.glob("*.yaml.template"))


def write_alerting(s: Settings) -> None:
    """Prometheus's config and rules and Alertmanager's config, rendered into RUN_DIR."""
    values = alerting_values(s)
    rules = s.run_dir / "prometheus" / "rules"
    rules.mkdir(parents=True, exist_ok=True)
    for old in rules.glob("*.yaml"):
        old.unlink()
    for template in prometheus_rule_templates():
        (rules / template.name.removesuffix(".template")).write_text(substitute(template.read_text(), values))
    (s.run_dir / "prometheus" / "prometheus.yml").write_text(substitute(PROMETHEUS_TEMPLATE.read_text(), values))
    (s.run_dir / "alertmanager.yml").write_text(substitute(ALERTMANAGER_TEMPLATE.read_text(), values))


def _env(values: dict[str, str]) -> str:
    # supervisord's environment= syntax: KEY="value",KEY2="value2"
    return ",".join(f'{k}="{_escape(v)}"' for k, v in values.items())


def _escape(value: str) -> str:
    # supervisord expands %(name)s in its values
    return value.replace("%", "%%")


def supervised(command: str, stopsignal: str) -> str:
    """A program's ``command=`` and ``stopsignal=`` lines. The command runs with the kernel's
    parent-death signal set to the same stop signal (setpriv --pdeathsig): however
    supervisord ends, even by SIGKILL, the kernel signals each program it started at once,
    and it stops as gracefully as on ``./stack down`` instead of serving on unsupervised
    (stackctl/leftovers.py finds any still stopping)."""
    return (f"command={tools.path('setpriv')} --pdeathsig {stopsignal} -- {command}\n"
            f"stopsignal={stopsignal}")


def program(run: Path, name: str, command: str, stopsignal: str, *, priority: int, why: str = "",
            env: dict | None = None, stopwaitsecs: int = 30, startsecs: int = 1, startretries: int = 0) -> str:
    """One supervised program's block; ``why`` becomes its comment lines."""
    lines = [f"[program:{name}]", *(f"; {line}" for line in why.splitlines()),
             supervised(command, stopsignal)]
    if env is not None:
        lines.append(f"environment={_env(env)}")
    lines += [f"stopwaitsecs={stopwaitsecs}", "autorestart=true", f"startsecs={startsecs}"]
    if startretries:
        lines.append(f"startretries={startretries}")
    lines += [f"priority={priority}", f"stdout_logfile={run}/{name}.out", f"stderr_logfile={run}/{name}.err"]
    return "\n" + "\n".join(lines) + "\n"


def supervisord_conf(s: Settings) -> str:
    run = s.run_dir
    parts = [f"""\
; generated by ./stack from the environment; edit the templates, not this file
[supervisord]
logfile={run}/supervisord.log
pidfile={run}/supervisord.pid
childlogdir={run}
directory={ROOT}
identifier=pc-builder-{s.http_port}

[unix_http_server]
file={run}/supervisor.sock
chmod=0700

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{run}/supervisor.sock
""", program(run, "nginx", f'{s.nginx_bin} -p {run}/nginx-temp -c {run}/nginx.conf -g "daemon off;"', "QUIT",
             why="QUIT: NGINX finishes the requests in flight, then exits", stopwaitsecs=40, priority=20)]
    for name in s.instances:
        env = {
            "INSTANCE": name,
            "UWSGI_SOCKET": str(s.socket_path(name)),
            "UWSGI_PROCESSES": str(s.uwsgi_processes),
            "UWSGI_THREADS": str(s.uwsgi_threads),
            "LOG_DIR": str(s.log_dir),
            "DATA_DIR": str(s.data_dir),
            "STACK_ENV": s.stack_env,
            "LOKI_URL": s.loki_target,
            "LOG_LEVEL": s.log_level,
            "DATABASE_PATH": str(s.database_path or ""),
            "LOG_MAX_BYTES": str(s.log_max_bytes),  # uWSGI rotates its own file
        }
        parts.append(program(run, name, f"{s.uwsgi_bin} --ini {UWSGI_INI}", "TERM", env=env,
                             why="TERM: uwsgi.ini turns it into a graceful shutdown",
                             stopwaitsecs=40, startsecs=2, startretries=5, priority=10))
    rotation = {"LOG_DIR": str(s.log_dir), "LOG_MAX_BYTES": str(s.log_max_bytes), "LOG_KEEP": str(s.log_keep),
                "LOG_ROTATE_INTERVAL": str(s.log_rotate_interval),
                "LOG_STALE_MINUTES": str(s.log_stale_minutes), "NGINX_PID": str(run / "nginx.pid"),
                "LOGROTATE_STATE": str(run / "logrotate.state"),
                "LOGROTATE_BIN": str(tools.path("logrotate"))}
    parts.append(program(run, "logrotate", f"{LOG_ROTATION_SCRIPT} run", "TERM", env=rotation,
                         stopwaitsecs=10, priority=30))
    if s.runs_loki:
        # compose's Loki config, with its data, address and ports from the environment
        env = {"LOKI_DATA_DIR": str(s.data_dir / "loki"), "LOKI_LISTEN_ADDR": "127.0.0.1",
               "LOKI_HTTP_PORT": str(s.loki_port), "LOKI_GRPC_PORT": str(s.loki_grpc_port),
               "LOKI_RULES_DIR": str(LOKI_RULES_DIR), "LOKI_RULER_INTERVAL": s.alert_eval_interval,
               "LOKI_PATTERNS": "true" if s.loki_patterns else "false",
               # without Prometheus the ruler still records, for Loki's own API, and writes nowhere
               "LOKI_REMOTE_WRITE_ENABLED": "true" if s.runs_alerting else "false",
               "LOKI_REMOTE_WRITE_URL": f"http://127.0.0.1:{s.prometheus_port}/api/v1/write",
               "LOKI_ALERTMANAGER_URL": f"http://127.0.0.1:{s.alertmanager_port}"}
        parts.append(program(run, "loki", f"{s.loki_bin} -config.file={LOKI_CONFIG} -config.expand-env=true",
                             "TERM", env=env, priority=5,
                             why="TERM: Loki stops taking pushes, flushes what it holds, then exits; "
                                 "its WAL keeps the rest"))
    if s.runs_alerting:
        parts.append(alerting_programs(s))
    if s.ships_with_alloy:
        # Alloy's loki.write takes the push URL only; LOKI_URL may be the base URL
        env = {"LOG_DIR": str(s.log_dir), "LOKI_URL": push_url(s.loki_target), "STACK_ENV": s.stack_env}
        alloy = (f"{s.alloy_bin} run --server.http.listen-addr=127.0.0.1:{s.alloy_port}"
                 f" --disable-reporting --storage.path={run}/alloy {ALLOY_CONFIG}")
        parts.append(program(run, "alloy", alloy, "TERM", env=env, startsecs=2, priority=7, why=(
            "the compose Alloy config, with paths and URL from the environment\n"
            "TERM: Alloy sends what it has read and saves its read positions; stopped after NGINX and\n"
            "the app (priorities stop in reverse), so their last lines are read before it goes")))
    return "".join(parts)


def alerting_programs(s: Settings) -> str:
    run, data = s.run_dir, s.data_dir
    prometheus = (f"{s.prometheus_bin} --config.file={run}/prometheus/prometheus.yml"
                  f" --storage.tsdb.path={data}/prometheus --storage.tsdb.retention.time=31d"
                  f" --web.listen-address=127.0.0.1:{s.prometheus_port} --web.enable-remote-write-receiver")
    # --cluster.listen-address= : one Alertmanager, no gossip port to collide with another stack's
    alertmanager = (f"{s.alertmanager_bin} --config.file={run}/alertmanager.yml"
                    f" --storage.path={data}/alertmanager --web.listen-address=127.0.0.1:{s.alertmanager_port}"
                    " --cluster.listen-address=")
    # Stopped after Loki (priorities stop in reverse), so the ruler's last samples are stored.
    return (program(run, "prometheus", prometheus, "TERM", priority=4,
                    why="TERM: Prometheus writes its head block and exits")
            + program(run, "alertmanager", alertmanager, "TERM", priority=3))


def check_basic_auth(s: Settings) -> None:
    """The htpasswd file must hold user:hash lines NGINX can check (the compose check too)."""
    if s.basic_auth_file is None:
        return
    env = {"PATH": os.defpath, "BASIC_AUTH_FILE": str(s.basic_auth_file),
           "BASIC_AUTH_USER_FILE": str(s.basic_auth_file)}
    result = subprocess.run(["sh", str(BASIC_AUTH_SCRIPT)], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SettingsError([result.stderr.strip().splitlines()[-1].split(": ", 1)[-1]])


def write_all(s: Settings) -> None:
    check_basic_auth(s)
    for sub in ("nginx", "uwsgi", "app"):
        (s.log_dir / sub).mkdir(parents=True, exist_ok=True)
    s.data_dir.mkdir(parents=True, exist_ok=True)
    (s.run_dir / "nginx-temp").mkdir(parents=True, exist_ok=True)
    (s.run_dir / "nginx.conf").write_text(nginx_conf(s))
    if s.runs_alerting:
        write_alerting(s)
    (s.run_dir / "supervisord.conf").write_text(supervisord_conf(s))
