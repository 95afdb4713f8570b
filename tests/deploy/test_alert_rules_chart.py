"""The rules and the Alertmanager config on Kubernetes, from the one set of files compose
and ./stack use: Loki's rules as ConfigMaps the official Loki chart's backend (its ruler)
mounts, Prometheus's rules as PrometheusRule objects for the Prometheus Operator, the
Alertmanager config as the alertmanager chart's values. Rendered with the real Helm; every
rule group of the files must be there, unchanged."""
from __future__ import annotations

import subprocess

import pytest
import yaml

from stackctl import k8s
from stackctl.render import UNUSED_WEBHOOK, substitute
from stackctl.settings import Settings
from tests.support.chart import by_kind, render
from tests.support.tools import REPO_ROOT, require_tool

LOKI_RULES = REPO_ROOT / "observability/loki/rules"
PROMETHEUS_RULES = sorted((REPO_ROOT / "observability/prometheus/rules").glob("*.yaml.template"))
CHART_SETTINGS = yaml.safe_load((k8s.CHART / "values.yaml").read_text())["prometheusRules"]["settings"]
CRD = ["--api-versions", "monitoring.coreos.com/v1/PrometheusRule"]


def groups(files) -> list[str]:
    return [g["name"] for f in files for g in yaml.safe_load(f.read_text())["groups"]]


def test_there_are_rules_to_render():
    """Guards the tests below against passing on an empty folder."""
    assert PROMETHEUS_RULES and groups(PROMETHEUS_RULES)
    assert list(LOKI_RULES.glob("*/*.yaml")) and groups(LOKI_RULES.glob("*/*.yaml"))


def test_loki_rules_are_one_configmap_per_tenant_holding_the_files_unchanged(default_docs):
    tenants = sorted(p.name for p in LOKI_RULES.iterdir() if p.is_dir())
    maps = {d["metadata"]["name"]: d for d in by_kind(default_docs, "ConfigMap")
            if d["metadata"]["name"].startswith("pc-builder-loki-rules-")}
    assert sorted(maps) == [f"pc-builder-loki-rules-{t}" for t in tenants]
    for tenant in tenants:
        data = maps[f"pc-builder-loki-rules-{tenant}"]["data"]
        files = sorted((LOKI_RULES / tenant).glob("*.yaml"))
        assert sorted(data) == [f.name for f in files]
        for f in files:
            assert data[f.name] == f.read_text()
    rendered = [g["name"] for m in maps.values() for text in m["data"].values() for g in yaml.safe_load(text)["groups"]]
    assert sorted(rendered) == sorted(groups(LOKI_RULES.glob("*/*.yaml")))


def test_the_loki_chart_mounts_them_where_its_ruler_reads_rule_files(default_docs):
    values = k8s.loki_values()
    directory = k8s._expanded(values["loki"]["structuredConfig"]["ruler"]["storage"]["local"]["directory"])
    assert "$" not in directory and directory.startswith("/")
    backend = values["backend"]
    volumes = {v["name"]: v["configMap"]["name"] for v in backend["extraVolumes"]}
    mounts = {m["mountPath"]: m["name"] for m in backend["extraVolumeMounts"]}
    chart_maps = {d["metadata"]["name"] for d in by_kind(default_docs, "ConfigMap")}
    for tenant in (p.name for p in LOKI_RULES.iterdir() if p.is_dir()):
        assert volumes[mounts[f"{directory}/{tenant}"]] in chart_maps
    env = {e["name"]: e["value"] for e in backend["extraEnv"]}
    assert env == {"LOKI_REMOTE_WRITE_URL": f"{k8s.PROMETHEUS_URL}/api/v1/write",
                   "LOKI_ALERTMANAGER_URL": k8s.ALERTMANAGER_URL}
    text = k8s.LOKI_CONFIG.read_text()
    assert "${LOKI_REMOTE_WRITE_URL" in text and "${LOKI_ALERTMANAGER_URL" in text


def test_a_loki_config_without_local_rule_storage_is_refused_in_one_line():
    with pytest.raises(k8s.RenderError, match="no ruler.storage.local.directory"):
        k8s._ruler_values({}, {"ruler": {"storage": {"type": "s3"}}})


def test_prometheus_rules_are_not_rendered_where_the_operator_is_not_installed(default_docs):
    assert by_kind(default_docs, "PrometheusRule") == []
    assert by_kind(render(extra=[*CRD, "--set", "prometheusRules.enabled=false"]), "PrometheusRule") == []


@pytest.mark.parametrize("extra", [CRD, ["--set", "prometheusRules.enabled=true"]], ids=["crd-served", "forced"])
def test_prometheus_rules_hold_every_group_of_every_file(extra):
    docs = render(extra=[*extra, "--set", "prometheusRules.labels.release=kube-prometheus-stack"])
    rules = {d["metadata"]["name"]: d for d in by_kind(docs, "PrometheusRule")}
    names = {f"pc-builder-{f.name.removesuffix('.yaml.template')}": f for f in PROMETHEUS_RULES}
    assert sorted(rules) == sorted(names)
    for name, f in names.items():
        doc = rules[name]
        assert doc["apiVersion"] == "monitoring.coreos.com/v1"
        assert doc["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        # the template filled as ./stack fills it, with the chart's settings; alert templates
        # ({{ $value }}) left for Prometheus
        want = yaml.safe_load(substitute(f.read_text(), {k: str(v) for k, v in CHART_SETTINGS.items()}))
        assert doc["spec"] == {"groups": want["groups"]}
    rendered = [g["name"] for d in rules.values() for g in d["spec"]["groups"]]
    assert sorted(rendered) == sorted(groups(PROMETHEUS_RULES))


def test_the_chart_settings_reach_the_rules():
    docs = render(extra=["--set", "prometheusRules.enabled=true", "--set", "prometheusRules.settings.ALERT_FOR=7m"])
    fors = {r.get("for") for d in by_kind(docs, "PrometheusRule") for g in d["spec"]["groups"] for r in g["rules"]}
    assert "7m" in fors and "5m" not in fors


def test_a_rule_setting_without_a_value_fails_the_render_naming_it():
    require_tool("helm")
    with pytest.raises(k8s.RenderError, match=r"needs prometheusRules.settings for \$\{ALERT_FOR\}"):
        render(extra=["--set", "prometheusRules.enabled=true", "--set", "prometheusRules.settings.ALERT_FOR=null"])


def test_prometheus_rules_pass_helm_lint():
    out = k8s.helm("lint", str(k8s.CHART), "--strict", "--kube-version", k8s.KUBE_VERSION,
                   "--set", "prometheusRules.enabled=true")
    assert "0 chart(s) failed" in out


def test_a_wrong_prometheus_rules_toggle_is_refused():
    require_tool("helm")
    with pytest.raises(k8s.RenderError, match="prometheusRules.enabled must be auto, true or false"):
        render(extra=["--set", "prometheusRules.enabled=maybe"])


@pytest.mark.parametrize("webhook,receiver", [("", "keep"), ("https://hooks.example.com/x", "webhook")])
def test_alertmanager_values_are_compose_config_on_the_pinned_image(webhook, receiver):
    values = k8s.alertmanager_values(Settings.from_env({"ALERT_WEBHOOK_URL": webhook}))
    config = dict(values["config"])
    assert config.pop("enabled") is True
    template = yaml.safe_load(k8s.ALERTMANAGER_TEMPLATE.read_text())
    assert config["route"].pop("receiver") == receiver
    assert (config["route"].pop("group_wait"), config["route"].pop("group_interval")) == ("30s", "5m")
    for key in ("receiver", "group_wait", "group_interval"):
        template["route"].pop(key)
    hook = next(r for r in config["receivers"] if r["name"] == "webhook")["webhook_configs"][0]
    assert hook.pop("url") == (webhook or UNUSED_WEBHOOK)
    next(r for r in template["receivers"] if r["name"] == "webhook")["webhook_configs"][0].pop("url")
    assert config == template  # routes, grouping, inhibitions: the file's
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]["alertmanager"]["image"]
    assert f"{values['image']['repository']}:{values['image']['tag']}" == compose


def test_grafana_gets_the_prometheus_and_alertmanager_datasources_pointed_at_the_cluster():
    sources = {s["uid"]: s for s in k8s.grafana_values()["datasources"]["datasources.yaml"]["datasources"]}
    assert sources["prometheus"]["type"] == "prometheus" and sources["prometheus"]["url"] == k8s.PROMETHEUS_URL
    assert sources["alertmanager"]["type"] == "alertmanager" and sources["alertmanager"]["url"] == k8s.ALERTMANAGER_URL
    for uid in ("prometheus", "alertmanager"):
        compose = yaml.safe_load((k8s.GRAFANA_PROVISIONING / f"datasources/{uid}.yaml").read_text())["datasources"][0]
        assert {k: v for k, v in sources[uid].items() if k != "url"} == {k: v for k, v in compose.items() if k != "url"}


def test_render_writes_the_alertmanager_values(tmp_path):
    require_tool("helm")
    result = subprocess.run([str(REPO_ROOT / "stack"), "k8s", "render", "--out", str(tmp_path)], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    written = yaml.safe_load((tmp_path / "values/alertmanager.yaml").read_text())
    assert written == k8s.alertmanager_values()
    assert "install alertmanager prometheus-community/alertmanager" in result.stdout
