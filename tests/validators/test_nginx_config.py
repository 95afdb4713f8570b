"""The NGINX template, rendered as ./stack renders it, passes `nginx -t` and gixy."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from stackctl import render
from stackctl.settings import Settings
from tests.validators.validator_helpers import require_tool


def rendered(tmp_path: Path, text: str | None = None) -> Path:
    settings = Settings.from_env({"LOG_DIR": str(tmp_path / "log"), "DATA_DIR": str(tmp_path / "data"),
                                  "RUN_DIR": str(tmp_path / "run")})
    render.write_all(settings)
    conf = settings.run_dir / "nginx.conf"
    if text is not None:
        conf.write_text(text)
    subprocess.run(["sh", str(render.TLS_CERT_SCRIPT)], check=True, capture_output=True,
                   env={"PATH": "/usr/bin:/bin", "TLS_CERT": str(settings.tls_cert), "TLS_KEY": str(settings.tls_key)})
    return conf


def test_rendered_config_passes_nginx_t(tmp_path):
    nginx = require_tool("nginx")
    conf = rendered(tmp_path)
    result = subprocess.run([nginx, "-t", "-p", str(conf.parent / "nginx-temp"), "-c", str(conf)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


def test_every_template_variable_is_substituted(tmp_path):
    text = rendered(tmp_path).read_text()
    assert "${" not in text


def gixy(conf: Path) -> list[dict]:
    result = subprocess.run([require_tool("gixy"), "-f", "json", str(conf)], capture_output=True, text=True)
    assert result.stdout.strip().startswith("["), result.stdout + result.stderr
    return json.loads(result.stdout)


def test_gixy_reports_nothing(tmp_path):
    assert gixy(rendered(tmp_path)) == []


def test_gixy_does_flag_a_broken_config(tmp_path):
    """Negative control: a location that silently drops the server's security headers."""
    conf = rendered(tmp_path)
    broken = conf.read_text().replace(
        "expires 30d;", 'expires 30d;\n            add_header Cache-Control "public";')
    assert broken != conf.read_text()
    issues = gixy(rendered(tmp_path, broken))
    assert any(i.get("plugin") == "add_header_redefinition" for i in issues), issues
