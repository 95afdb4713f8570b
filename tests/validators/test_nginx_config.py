"""The NGINX template, rendered as ./stack renders it, passes `nginx -t` and gixy."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from stackctl import render
from stackctl.settings import Settings, SettingsError
from tests.support.tools import require_tool


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


def auth_settings(tmp_path: Path, users: str, **extra: str) -> Settings:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(users)
    return Settings.from_env({"LOG_DIR": str(tmp_path / "log"), "DATA_DIR": str(tmp_path / "data"),
                              "RUN_DIR": str(tmp_path / "run"), "BASIC_AUTH_FILE": str(htpasswd), **extra})


def test_config_with_basic_auth_and_server_names_passes_nginx_t_and_gixy(tmp_path):
    hashed = subprocess.run([require_tool("openssl"), "passwd", "-apr1", "-stdin"], input="pw",
                            capture_output=True, text=True, check=True).stdout.strip()
    settings = auth_settings(tmp_path, f"admin:{hashed}\n", SERVER_NAME="shop.example  [::1] 10.0.0.7")
    render.write_all(settings)
    conf = settings.run_dir / "nginx.conf"
    text = conf.read_text()
    assert f"auth_basic_user_file {tmp_path / 'htpasswd'};" in text
    assert '"$host|shop.example [::1] 10.0.0.7"' in text
    subprocess.run(["sh", str(render.TLS_CERT_SCRIPT)], check=True, capture_output=True,
                   env={"PATH": "/usr/bin:/bin", "TLS_CERT": str(settings.tls_cert), "TLS_KEY": str(settings.tls_key)})
    result = subprocess.run([require_tool("nginx"), "-t", "-p", str(conf.parent / "nginx-temp"), "-c", str(conf)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert gixy(conf) == []


@pytest.mark.parametrize("users,message", [
    ("admin:secret\n", "line 1 (user admin) does not hold a salted password hash"),
    ("admin:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n", "line 1 (user admin) does not hold a salted password hash"),
    ("", "holds no user"),
    (":$apr1$x$y\n", "line 1 is not user:hash"),
])
def test_an_unusable_htpasswd_file_is_one_clear_settings_error(tmp_path, users, message):
    with pytest.raises(SettingsError) as error:
        render.write_all(auth_settings(tmp_path, users))
    assert message in str(error.value) and "\n" not in str(error.value)
    assert "secret" not in str(error.value)


def test_a_missing_htpasswd_file_is_one_clear_settings_error(tmp_path):
    settings = Settings.from_env({"RUN_DIR": str(tmp_path / "run"), "BASIC_AUTH_FILE": str(tmp_path / "nope")})
    with pytest.raises(SettingsError, match="is not a file"):
        render.check_basic_auth(settings)


@pytest.mark.parametrize("name", ["evil example/x", "a_b", "[::1", "host;", "é.example"])
def test_a_bad_server_name_is_one_clear_settings_error(name):
    with pytest.raises(SettingsError, match="SERVER_NAME"):
        Settings.from_env({"SERVER_NAME": f"localhost {name}"})


def test_server_name_has_a_local_default():
    assert Settings.from_env({}).server_name == "localhost 127.0.0.1 [::1]"


def test_basic_auth_is_off_by_default_and_a_path_with_nginx_syntax_is_refused(tmp_path):
    values = render.nginx_values(Settings.from_env({}))
    assert values["BASIC_AUTH_FILE"] == "off"
    with pytest.raises(SettingsError, match="BASIC_AUTH_FILE"):
        Settings.from_env({"BASIC_AUTH_FILE": str(tmp_path / "a$b")})


def test_the_basic_auth_check_script_is_executable_shell():
    """The nginx image's entrypoint silently skips scripts in /docker-entrypoint.d that are not executable."""
    assert os.access(render.BASIC_AUTH_SCRIPT, os.X_OK)
    assert render.BASIC_AUTH_SCRIPT.read_text().startswith("#!/bin/sh")
    assert subprocess.run(["sh", "-n", str(render.BASIC_AUTH_SCRIPT)]).returncode == 0
