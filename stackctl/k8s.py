"""``./stack k8s render``: the Kubernetes deployment, rendered for review or GitOps.

Writes into ``--out`` (default ``./var/k8s``):

- ``pc-builder.yaml``: our chart (deploy/helm/pc-builder) through ``helm template``;
- ``values/loki.yaml``, ``values/alloy.yaml``, ``values/grafana.yaml``,
  ``values/alertmanager.yaml``: the values for the official charts, where what compose
  already says is taken from compose's own files (observability/loki/loki-scalable.yaml and
  its rules folder, observability/grafana/provisioning, observability/alertmanager), not copied;
- and prints the ``helm`` commands that install everything, in order.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

import yaml

from . import render as render_config, tools
from .console import StackError, say
from .settings import Settings

ROOT = tools.ROOT
CHART = ROOT / "deploy" / "helm" / "pc-builder"
VALUES_DIR = ROOT / "deploy" / "values"
LOKI_CONFIG = ROOT / "observability" / "loki" / "loki-scalable.yaml"
GRAFANA_PROVISIONING = ROOT / "observability" / "grafana" / "provisioning"
LOKI_RULES = ROOT / "observability" / "loki" / "rules"
ALERTMANAGER_TEMPLATE = ROOT / "observability" / "alertmanager" / "alertmanager.yml.template"
#: The Kubernetes version the manifests are rendered for (and validated against).
KUBE_VERSION = "1.34.0"
NAMESPACE = "pc-builder"
RELEASE = "pc-builder"
#: Where Grafana reaches Loki in the cluster: the official chart's gateway (release `loki`).
LOKI_GATEWAY = "http://loki-gateway"
#: Where the grafana chart mounts a dashboards ConfigMap (dashboardsConfigMaps: pc-builder).
GRAFANA_DASHBOARDS_PATH = "/var/lib/grafana/dashboards/pc-builder"
#: Where Loki's ruler and Grafana reach Prometheus and Alertmanager in the cluster: the
#: Prometheus Operator's service for the Prometheus in this namespace (it needs
#: `enableRemoteWriteReceiver: true`, deploy/README.md), and the prometheus-community
#: alertmanager chart installed as release `alertmanager`.
PROMETHEUS_URL = "http://prometheus-operated:9090"
ALERTMANAGER_URL = "http://alertmanager:9093"
_ENV_DEFAULT = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


class RenderError(Exception):
    """Printed as ``stack: <message>`` with exit code 1."""


def helm(*args: str) -> str:
    """Run the project's Helm with private cache/config folders; its stdout, or RenderError."""
    binary = tools.path("helm")
    if not binary.exists():
        raise RenderError(tools.missing("helm"))
    with tempfile.TemporaryDirectory(prefix="helm-home-") as home:
        env = {**os.environ, "HELM_CACHE_HOME": f"{home}/cache", "HELM_CONFIG_HOME": f"{home}/config",
               "HELM_DATA_HOME": f"{home}/data"}
        result = subprocess.run([str(binary), *args], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RenderError(f"helm {args[0]} failed:\n{result.stderr.strip()}")
    return result.stdout


def template(values_files: list[Path] = (), release: str = RELEASE, namespace: str = NAMESPACE,
             extra: list[str] = ()) -> str:
    """Our chart's manifests (helm template) for these values files."""
    args = ["template", release, str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION]
    for f in values_files:
        args += ["--values", str(f)]
    return helm(*args, *extra)


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def loki_values() -> dict:
    """deploy/values/loki.yaml plus the plain Loki config as the chart's structured config.

    The chart also reads schema, storage and auth from its own keys (its templates need
    them even when the structured config overrides the result): they are derived here from
    the same file, so the two cannot disagree.
    """
    values = _load(VALUES_DIR / "loki.yaml")
    config = _load(LOKI_CONFIG)
    s3 = config["common"]["storage"]["s3"]
    loki = values.setdefault("loki", {})
    loki["auth_enabled"] = config["auth_enabled"]
    loki["schemaConfig"] = config["schema_config"]
    loki["storage"] = {
        "type": "s3",
        "bucketNames": {"chunks": s3["bucketnames"], "ruler": s3["bucketnames"],
                        "admin": s3["bucketnames"]},
        "s3": {"endpoint": s3["endpoint"], "region": s3["region"],
               "accessKeyId": s3["access_key_id"], "secretAccessKey": s3["secret_access_key"],
               "s3ForcePathStyle": s3["s3forcepathstyle"], "insecure": s3["insecure"]},
    }
    loki["structuredConfig"] = config
    _ruler_values(values, config)
    return values


def _expanded(text: str) -> str:
    """A config value as Loki's -config.expand-env reads it where the variable is unset."""
    return _ENV_DEFAULT.sub(lambda m: m.group(2) or "", text)


def _ruler_values(values: dict, config: dict) -> None:
    """The backend pods (which run the ruler in simple-scalable mode) mount our chart's
    ConfigMap of each tenant's rules where the ruler's local storage reads them, and are
    told where Prometheus and Alertmanager are (the variables the config reads)."""
    try:
        directory = _expanded(config["ruler"]["storage"]["local"]["directory"])
    except (KeyError, TypeError):
        raise RenderError(f"{LOKI_CONFIG.relative_to(ROOT)}: no ruler.storage.local.directory, so the"
                          " rules in observability/loki/rules cannot be mounted for its ruler") from None
    prefix = _load(CHART / "values.yaml")["lokiRules"]["configMapPrefix"]
    backend = values.setdefault("backend", {})
    backend.setdefault("extraEnv", []).extend([
        {"name": "LOKI_REMOTE_WRITE_URL", "value": f"{PROMETHEUS_URL}/api/v1/write"},
        {"name": "LOKI_ALERTMANAGER_URL", "value": ALERTMANAGER_URL}])
    for tenant in sorted(p.name for p in LOKI_RULES.iterdir() if p.is_dir()):
        name = f"loki-rules-{tenant}"
        backend.setdefault("extraVolumes", []).append({"name": name, "configMap": {"name": f"{prefix}-{tenant}"}})
        backend.setdefault("extraVolumeMounts", []).append(
            {"name": name, "mountPath": f"{directory}/{tenant}", "readOnly": True})


def grafana_values() -> dict:
    """deploy/values/grafana.yaml plus compose's datasource and dashboard provider."""
    values = _load(VALUES_DIR / "grafana.yaml")
    datasources = _load(GRAFANA_PROVISIONING / "datasources" / "loki.yaml")
    for source in datasources["datasources"]:
        if source["type"] == "loki":
            source["url"] = LOKI_GATEWAY
    providers = _load(GRAFANA_PROVISIONING / "dashboards" / "dashboards.yaml")
    for provider in providers["providers"]:
        provider["options"]["path"] = GRAFANA_DASHBOARDS_PATH
    for name, url in (("prometheus", PROMETHEUS_URL), ("alertmanager", ALERTMANAGER_URL)):
        more = _load(GRAFANA_PROVISIONING / "datasources" / f"{name}.yaml")["datasources"]
        for source in more:
            source["url"] = url
        datasources["datasources"] += more
    values["datasources"] = {"datasources.yaml": datasources}
    values["dashboardProviders"] = {"dashboardproviders.yaml": providers}
    return values


def alloy_values() -> dict:
    return _load(VALUES_DIR / "alloy.yaml")


def alertmanager_values(s: Settings | None = None) -> dict:
    """deploy/values/alertmanager.yaml plus compose's alertmanager.yml.template, filled as
    ./stack fills it from the settings (ALERT_WEBHOOK_URL: the webhook receiver, else `keep`;
    ALERT_GROUP_*), as the chart's config."""
    values = _load(VALUES_DIR / "alertmanager.yaml")
    filled = render_config.alerting_values(s or Settings.from_env({}))
    config = yaml.safe_load(render_config.substitute(ALERTMANAGER_TEMPLATE.read_text(), filled))
    values["config"] = {"enabled": True, **config}
    return values


def install_commands(out: Path, namespace: str = NAMESPACE) -> list[str]:
    v = out / "values"
    return [
        f"kubectl create namespace {namespace}",
        f"kubectl -n {namespace} create secret generic loki-s3 --from-literal=LOKI_S3_ENDPOINT=... "
        "--from-literal=LOKI_S3_BUCKET=... --from-literal=LOKI_S3_ACCESS_KEY_ID=... "
        "--from-literal=LOKI_S3_SECRET_ACCESS_KEY=...",
        f"kubectl -n {namespace} create secret generic grafana-admin --from-literal=admin-user=admin "
        "--from-literal=admin-password='<choose one>'",
        "helm repo add grafana https://grafana.github.io/helm-charts && helm repo update",
        "helm repo add prometheus-community https://prometheus-community.github.io/helm-charts",
        # first: its ConfigMaps (Loki's rules, Alloy's pipeline, the dashboards) are mounted by the others
        f"kubectl -n {namespace} apply -f {out / 'pc-builder.yaml'}"
        f"   # or: helm upgrade --install {RELEASE} deploy/helm/pc-builder -n {namespace}",
        f"helm upgrade --install loki grafana/loki --version 6.29.0 -n {namespace} -f {v / 'loki.yaml'}",
        f"helm upgrade --install alertmanager prometheus-community/alertmanager -n {namespace}"
        f" -f {v / 'alertmanager.yaml'}",
        f"helm upgrade --install alloy grafana/alloy --version 0.12.5 -n {namespace} -f {v / 'alloy.yaml'}",
        f"helm upgrade --install grafana grafana/grafana -n {namespace} -f {v / 'grafana.yaml'}",
    ]


def render(out: Path, values_files: list[Path], settings: Settings | None = None) -> list[Path]:
    for f in values_files:
        if not f.is_file():
            raise RenderError(f"values file {f} does not exist")
    manifests = template(values_files)
    (out / "values").mkdir(parents=True, exist_ok=True)
    written = [out / "pc-builder.yaml"]
    written[0].write_text(manifests)
    for name, values in (("loki", loki_values()), ("alloy", alloy_values()), ("grafana", grafana_values()),
                         ("alertmanager", alertmanager_values(settings))):
        path = out / "values" / f"{name}.yaml"
        path.write_text(f"# generated by ./stack k8s render from deploy/values/{name}.yaml; edit that\n"
                        + yaml.safe_dump(values, sort_keys=False))
        written.append(path)
    return written


def cmd_k8s(settings, args) -> int:
    out = Path(args.out).resolve()
    try:
        written = render(out, [Path(f).resolve() for f in args.values], settings)
    except RenderError as exc:
        raise StackError(str(exc)) from None
    for path in written:
        say(f"wrote {path}")
    say("install, in this order (deploy/README.md):")
    for line in install_commands(out):
        print(f"  {line}")
    return 0


def add_parser(sub) -> None:
    """``./stack k8s render``: the one hook cli.py calls."""
    k8s = sub.add_parser("k8s", help="render the Kubernetes deployment (deploy/README.md)")
    actions = k8s.add_subparsers(dest="action", required=True)
    render_p = actions.add_parser("render", help="chart manifests and the official charts' values files")
    render_p.add_argument("--out", default=str(ROOT / "var" / "k8s"), help="output folder (default ./var/k8s)")
    render_p.add_argument("-f", "--values", action="append", default=[], metavar="FILE",
                          help="values file for deploy/helm/pc-builder (repeatable)")
    render_p.set_defaults(func=cmd_k8s, needs=set())

