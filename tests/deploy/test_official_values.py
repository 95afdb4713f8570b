"""Values for the official grafana/loki, grafana/alloy and grafana/grafana charts: only
keys those charts document (tests/deploy/official_chart_keys.yaml), and the same
provisioning, versions and pipeline as compose."""
from __future__ import annotations

import pytest
import yaml

from stackctl import k8s
from tests.support.config_text import shared_block
from tests.support.tools import REPO_ROOT

KEYS = yaml.safe_load((REPO_ROOT / "tests/deploy/official_chart_keys.yaml").read_text())
COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
VALUES = {"loki": k8s.loki_values, "alloy": k8s.alloy_values, "grafana": k8s.grafana_values,
          "alertmanager": k8s.alertmanager_values}


def leaf_paths(tree, prefix=()):
    if isinstance(tree, dict) and tree:
        for key, value in tree.items():
            yield from leaf_paths(value, (*prefix, str(key)))
    else:
        yield prefix


def undocumented(values: dict, chart: str) -> list[str]:
    keys = {tuple(k.split("/")) for k in KEYS[chart]["keys"]}
    free = [tuple(k.split("/")) for k in KEYS[chart]["free"]]
    bad = []
    for path in leaf_paths(values):
        if path in keys or any(path[: len(f)] == f for f in free):
            continue
        bad.append("/".join(path))
    return bad


@pytest.mark.parametrize("chart", sorted(VALUES))
def test_values_use_only_documented_keys(chart):
    assert undocumented(VALUES[chart](), chart) == []


def test_the_key_check_catches_a_typo():
    values = k8s.loki_values()
    values["write"]["replica"] = 3
    values["gateway"]["enable"] = True
    assert undocumented(values, "loki") == ["write/replica", "gateway/enable"]


def _compose_image(service: str) -> str:
    return COMPOSE["services"][service]["image"].split(":", 1)[1]


@pytest.mark.parametrize("chart,service", [("loki", "loki"), ("alloy", "alloy"), ("grafana", "grafana"),
                                           ("alertmanager", "alertmanager")])
def test_same_versions_as_compose(chart, service):
    values = VALUES[chart]()
    tag = values["loki"]["image"]["tag"] if chart == "loki" else values["image"]["tag"]
    assert tag == _compose_image(service)


def test_alloy_reads_our_chart_configmap_and_the_shared_module(default_docs):
    alloy = k8s.alloy_values()
    chart_values = yaml.safe_load((k8s.CHART / "values.yaml").read_text())
    cm_name = chart_values["alloy"]["configMap"]["name"]
    assert alloy["alloy"]["configMap"] == {"create": False, "name": cm_name, "key": "config.alloy"}
    cm = [d for d in default_docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == cm_name][0]
    assert set(cm["data"]) == {"config.alloy", "pcbuilder.alloy"}
    # the module is config.alloy's shared block, the pipeline kubernetes.alloy: both unchanged
    assert cm["data"]["pcbuilder.alloy"] == shared_block((REPO_ROOT / "observability/alloy/config.alloy").read_text()) + "\n"
    assert cm["data"]["config.alloy"] == (REPO_ROOT / "observability/alloy/kubernetes.alloy").read_text()
    # the chart mounts the whole ConfigMap at /etc/alloy: the module is where the config imports it
    assert 'coalesce(sys.env("PCBUILDER_ALLOY_MODULE"), "/etc/alloy/pcbuilder.alloy")' in cm["data"]["config.alloy"]
    assert alloy["controller"]["type"] == "daemonset"
    assert alloy["alloy"]["mounts"]["varlog"] is True  # /var/log/pods
    env = {e["name"]: e["value"] for e in alloy["alloy"]["extraEnv"]}
    assert env["LOKI_URL"] == f"{k8s.LOKI_GATEWAY}/loki/api/v1/push"


def test_grafana_gets_compose_provisioning_pointed_at_the_cluster(default_docs):
    values = k8s.grafana_values()
    compose_ds = yaml.safe_load((k8s.GRAFANA_PROVISIONING / "datasources/loki.yaml").read_text())
    ds = values["datasources"]["datasources.yaml"]
    assert ds["datasources"][0].pop("url") == k8s.LOKI_GATEWAY
    assert compose_ds["datasources"][0].pop("url") == "http://loki:3100"
    assert ds["datasources"][0] == compose_ds["datasources"][0]  # uid `loki`, derived fields: all the same
    assert ds["apiVersion"] == compose_ds["apiVersion"]
    compose_prov = yaml.safe_load((k8s.GRAFANA_PROVISIONING / "dashboards/dashboards.yaml").read_text())
    prov = values["dashboardProviders"]["dashboardproviders.yaml"]
    assert prov["providers"][0]["options"].pop("path") == k8s.GRAFANA_DASHBOARDS_PATH
    compose_prov["providers"][0]["options"].pop("path")
    assert prov == compose_prov
    # the grafana chart mounts dashboardsConfigMaps[<provider>] at /var/lib/grafana/dashboards/<provider>
    (provider, cm_name), = values["dashboardsConfigMaps"].items()
    assert k8s.GRAFANA_DASHBOARDS_PATH.endswith("/" + provider)
    cm = [d for d in default_docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == cm_name][0]
    dashboards = sorted(p.name for p in (REPO_ROOT / "observability/grafana/dashboards").glob("*.json"))
    assert sorted(cm["data"]) == dashboards
    for name in dashboards:
        assert cm["data"][name] == (REPO_ROOT / "observability/grafana/dashboards" / name).read_text()
    home = values["grafana.ini"]["dashboards"]["default_home_dashboard_path"]
    assert home.startswith(k8s.GRAFANA_DASHBOARDS_PATH + "/") and home.rsplit("/", 1)[1] in dashboards


def test_grafana_admin_password_has_no_default():
    values = k8s.grafana_values()
    assert values["admin"]["existingSecret"] == "grafana-admin"
    keys = {part.lower() for path in leaf_paths(values) for part in path}
    assert not {k for k in keys if "password" in k} - {"passwordkey"}  # no password in values
    ini = values["grafana.ini"]
    assert ini["auth.anonymous"]["enabled"] is False and ini["users"]["allow_sign_up"] is False
