"""`./stack k8s render`: the one command that renders the whole deployment for a user."""
from __future__ import annotations

import subprocess

import yaml

from stackctl import k8s
from tests.support.chart import PRODUCTION
from tests.support.env import clean_env
from tests.support.tools import REPO_ROOT, require_tool


def run(*args: str) -> subprocess.CompletedProcess:
    require_tool("helm")
    return subprocess.run([str(REPO_ROOT / "stack"), "k8s", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300, env=clean_env())


def test_render_writes_the_manifests_and_the_official_charts_values(tmp_path):
    result = run("render", "--out", str(tmp_path), "-f", str(PRODUCTION))
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all((tmp_path / "pc-builder.yaml").read_text()) if d]
    assert {"Deployment", "Service", "NetworkPolicy", "Ingress"} <= {d["kind"] for d in docs}
    loki = yaml.safe_load((tmp_path / "values/loki.yaml").read_text())
    assert loki["loki"]["structuredConfig"] == yaml.safe_load(k8s.LOKI_CONFIG.read_text())
    for name in ("alloy", "grafana", "alertmanager"):
        assert yaml.safe_load((tmp_path / f"values/{name}.yaml").read_text())
    # the install commands, in order, naming the files just written
    out = result.stdout
    # our chart before the others: they mount its ConfigMaps (Loki's rules, Alloy's pipeline, dashboards)
    order = [out.index(s) for s in ("create secret generic loki-s3", "apply -f", "install loki grafana/loki",
                                    "install alertmanager prometheus-community/alertmanager",
                                    "install alloy grafana/alloy", "install grafana grafana/grafana")]
    assert order == sorted(order)
    assert str(tmp_path / "values/loki.yaml") in out


def test_render_refuses_a_missing_values_file_in_one_line(tmp_path):
    result = run("render", "--out", str(tmp_path), "-f", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"stack: values file {tmp_path / 'nope.yaml'} does not exist"
    assert not (tmp_path / "pc-builder.yaml").exists()
