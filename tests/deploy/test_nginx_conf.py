"""The chart's NGINX configuration is nginx/nginx.conf.template, rendered with the chart's
values by the same rules as ./stack (stackctl/render.py substitute), and nothing else."""
from __future__ import annotations

import getpass
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from stackctl import k8s, render
from tests.support.chart import one
from tests.support.tools import REPO_ROOT, require_tool

FILES = k8s.CHART / "files"
#: The chart's view of the shared files: links, never copies.
LINKS = {
    "nginx.conf.template": REPO_ROOT / "nginx" / "nginx.conf.template",
    "20-tls-cert.sh": REPO_ROOT / "nginx" / "docker-entrypoint.d" / "20-tls-cert.sh",
    "30-basic-auth.sh": REPO_ROOT / "nginx" / "docker-entrypoint.d" / "30-basic-auth.sh",
    "dashboards": REPO_ROOT / "observability" / "grafana" / "dashboards",
    "alloy/config.alloy": REPO_ROOT / "observability" / "alloy" / "config.alloy",
    "alloy/kubernetes.alloy": REPO_ROOT / "observability" / "alloy" / "kubernetes.alloy",
}


@pytest.mark.parametrize("name", sorted(LINKS))
def test_chart_files_are_links_to_the_shared_files(name):
    path = FILES / name
    assert path.is_symlink(), f"{path} must link to {LINKS[name]}, not be a copy"
    assert path.resolve() == LINKS[name].resolve()


def test_rendered_config_is_the_template_with_the_chart_values(docs):
    cm = one(docs, "ConfigMap", "-nginx")
    values = json.loads(cm["data"]["template-values.json"])
    expected = render.substitute(render.NGINX_TEMPLATE.read_text(), values)
    assert cm["data"]["nginx.conf"] == expected
    assert "${" not in cm["data"]["nginx.conf"]


def test_the_chart_sets_every_variable_stack_sets():
    """Same variable names as ./stack: a variable added to the template and to render.py
    without a chart value fails the render (the next test)."""
    docs = [d for d in yaml.safe_load_all(k8s.template()) if d]
    chart = set(json.loads(one(docs, "ConfigMap", "-nginx")["data"]["template-values.json"]))
    from stackctl.settings import Settings
    stack = set(render.nginx_values(Settings.from_env({})))
    assert chart == stack


@pytest.fixture
def chart_copy(tmp_path) -> Path:
    """The chart with its links resolved into real files, to edit the template safely."""
    copy = tmp_path / "pc-builder"
    shutil.copytree(k8s.CHART, copy, symlinks=False)
    return copy


def _template(chart: Path, *extra: str) -> str:
    require_tool("helm")
    return k8s.helm("template", "t", str(chart), "--kube-version", k8s.KUBE_VERSION, *extra)


def test_an_unknown_variable_fails_the_render_naming_it(chart_copy):
    template = chart_copy / "files" / "nginx.conf.template"
    template.write_text(template.read_text() + "# ${NEW_SETTING} ${OTHER_ONE}\n")
    with pytest.raises(k8s.RenderError) as failure:
        _template(chart_copy)
    assert "NEW_SETTING, OTHER_ONE" in str(failure.value)
    assert "nginx.extraTemplateValues" in str(failure.value)


def test_extra_template_values_supply_a_new_variable(chart_copy):
    template = chart_copy / "files" / "nginx.conf.template"
    template.write_text(template.read_text() + "# server name: ${NEW_SETTING}\n")
    out = _template(chart_copy, "--set", "nginx.extraTemplateValues.NEW_SETTING=shop.example.com")
    docs = [d for d in yaml.safe_load_all(out) if d]
    conf = one(docs, "ConfigMap", "-nginx")["data"]["nginx.conf"]
    assert conf.endswith("# server name: shop.example.com\n")


def test_kubernetes_values_pass_nginx_t(tmp_path, default_docs):
    """The chart's values in NGINX's own check. Only what exists in a pod and not here is
    moved: paths into tmp_path, the user, and the app Service's name (which NGINX resolves)."""
    nginx = require_tool("nginx")
    cm = one(default_docs, "ConfigMap", "-nginx")
    values = json.loads(cm["data"]["template-values.json"])
    assert values["NGINX_ACCESS_LOG"] == "/dev/stdout stack_json"  # kept as the pod has it
    for d in ("tls", "static", "tmp", "log/nginx"):
        (tmp_path / d).mkdir(parents=True)
    values.update(TLS_CERT=str(tmp_path / "tls/tls.crt"), TLS_KEY=str(tmp_path / "tls/tls.key"),
                  STATIC_DIR=str(tmp_path / "static"),
                  NGINX_PID=str(tmp_path / "tmp/nginx.pid"), NGINX_TEMP=str(tmp_path / "tmp"),
                  LOG_DIR=str(tmp_path / "log"), NGINX_USER=getpass.getuser(),
                  UPSTREAM_SERVERS=values["UPSTREAM_SERVERS"].replace(
                      values["UPSTREAM_SERVERS"].split()[1].rsplit(":", 1)[0], "127.0.0.1"))
    conf = tmp_path / "nginx.conf"
    conf.write_text(render.substitute(render.NGINX_TEMPLATE.read_text(), values))
    subprocess.run(["sh", str(render.TLS_CERT_SCRIPT)], check=True, capture_output=True,
                   env={"PATH": "/usr/bin:/bin", "TLS_CERT": values["TLS_CERT"], "TLS_KEY": values["TLS_KEY"]})
    result = subprocess.run([nginx, "-t", "-p", str(tmp_path / "tmp"), "-c", str(conf)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "listen 0.0.0.0:8080" in conf.read_text() and "server 127.0.0.1:3031;" in conf.read_text()
