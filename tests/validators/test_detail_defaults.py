"""Detail on demand's defaults are the same in compose and the chart as in the one settings
definition (service/pcbuilder/settings.py): a launcher that passes another value, or none,
fails here."""
from __future__ import annotations

import re

import yaml

from stackctl.settings import BY_NAME
from tests.support.tools import REPO_ROOT

NAMES = {"LOG_DETAIL": "mode", "LOG_DETAIL_SLOW_MS": "slowMs", "LOG_DETAIL_SAMPLE": "sample"}


def test_compose_passes_detail_settings_with_the_apps_defaults():
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    for name in NAMES:
        found = re.search(rf"^\s+{name}: \$\{{{name}:-([^}}]*)\}}$", text, re.M)
        assert found, f"docker-compose.yml does not pass {name}"
        assert found.group(1) == BY_NAME[name].default, name


def test_chart_passes_detail_settings_with_the_apps_defaults():
    values = yaml.safe_load((REPO_ROOT / "deploy/helm/pc-builder/values.yaml").read_text())
    template = (REPO_ROOT / "deploy/helm/pc-builder/templates/app.yaml").read_text()
    for name, key in NAMES.items():
        assert f"- name: {name}\n              value: {{{{ .Values.app.detail.{key} | quote }}}}" in template, name
        assert str(values["app"]["detail"][key]) == BY_NAME[name].default, name
