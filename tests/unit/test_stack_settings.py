"""The settings table of ./stack (stackctl/settings.py), without starting a stack.

Every setting is checked with a one-line error naming it, listed by ``./stack help`` and
in the README; commands acting on a running stack use the settings it was started with.
"""
from __future__ import annotations

import os
import re
import subprocess

import pytest

from stackctl import cli, settings
from stackctl.settings import SETTINGS, Settings, SettingsError
from tests.support.stack import ROOT, STACK


def problems(**env: str) -> list[str]:
    try:
        Settings.from_env(env)
    except SettingsError as exc:
        return exc.problems
    return []


def test_every_default_is_a_good_value_and_survives_saving():
    s = Settings.from_env({})
    assert s.http_port == 8080 and s.https_redirect is False and s.log_level == "INFO"
    assert s.tls_cert == s.data_dir / "tls" / "cert.pem" and s.provided == frozenset()
    assert Settings.from_env(s.as_env()).values == s.values


@pytest.mark.parametrize("name, value, line", [
    ("HTTP_PORT", "eighty", "HTTP_PORT=eighty is not a whole number"),
    ("HTTPS_PORT", "70000", "HTTPS_PORT=70000 is out of range (1..65535)"),
    ("APP_INSTANCES", "0", "APP_INSTANCES=0 is out of range (1..32)"),
    ("HTTPS_REDIRECT", "maybe", "HTTPS_REDIRECT=maybe is neither on nor off"),
    ("LOG_LEVEL", "LOUD", "LOG_LEVEL=LOUD is not a log level (DEBUG, INFO, WARNING, ERROR, CRITICAL)"),
    ("HTTP_ADDR", "not an addr", "HTTP_ADDR='not an addr' is not an IPv4 address"),
    ("HTTP_ADDR", "localhost", "HTTP_ADDR=localhost is not an IPv4 address"),
    ("LOKI_URL", "not-a-url", "LOKI_URL=not-a-url is not an http:// or https:// URL"),
    ("LOKI_URL", "http://u:pw@loki:3100/loki/api/v1/tail",
     "LOKI_URL='http://u:***@loki:3100/loki/api/v1/tail' is another Loki API path"),
    ("LOKI_TIMEOUT", "-1", "LOKI_TIMEOUT=-1 is not a positive number"),
    ("LOKI_BATCH_INTERVAL", "soon", "LOKI_BATCH_INTERVAL=soon is not a number"),
    ("LOKI_BACKLOG_BYTES", "8MiB", "LOKI_BACKLOG_BYTES=8MiB is not a whole number"),
    ("DB_SLOW_MS", "-1", "DB_SLOW_MS=-1 is not a number of 0 or more"),
    ("LOG_DETAIL", "sometimes", "LOG_DETAIL=sometimes is neither on nor off"),
    ("LOG_DETAIL_SLOW_MS", "-5", "LOG_DETAIL_SLOW_MS=-5 is not a number of 0 or more"),
    ("LOG_DETAIL_SAMPLE", "2", "LOG_DETAIL_SAMPLE=2 is not a fraction from 0 to 1"),
    ("LOG_DETAIL_SAMPLE", "1%", "LOG_DETAIL_SAMPLE=1% is not a number"),
    ("LOG_DETAIL_MAX_EVENTS", "0", "LOG_DETAIL_MAX_EVENTS=0 is out of range (1..100000)"),
    ("LOG_DETAIL_MAX_BYTES", "64k", "LOG_DETAIL_MAX_BYTES=64k is not a whole number"),
    ("TLS_SELF_SIGNED_DAYS", "0", "TLS_SELF_SIGNED_DAYS=0 is out of range (1..3650)"),
    ("STACK_START_TIMEOUT", "forever", "STACK_START_TIMEOUT=forever is not a whole number"),
])
def test_a_bad_value_is_one_line_naming_the_variable(name, value, line):
    found = problems(**{name: value})
    assert len(found) == 1 and found[0].startswith(line), found


def test_several_bad_values_are_one_line_each():
    assert len(problems(HTTP_PORT="x", LOG_LEVEL="LOUD", HTTPS_REDIRECT="maybe")) == 3


def test_good_spellings_are_accepted():
    s = Settings.from_env({"HTTPS_REDIRECT": "YES", "LOG_LEVEL": "debug", "HTTP_ADDR": "0.0.0.0",
                           "LOKI_URL": "http://loki:3100"})
    assert s.https_redirect is True and s.log_level == "DEBUG" and s.base_url.startswith("https://127.0.0.1:")
    assert s.provided == {"HTTPS_REDIRECT", "LOG_LEVEL", "HTTP_ADDR", "LOKI_URL"}


def test_only_the_settings_a_command_needs_must_be_good(tmp_path):
    s = Settings.from_env({"HTTP_PORT": "abc", "LOG_DIR": str(tmp_path)}, needed={"LOG_DIR"})
    assert s.log_dir == tmp_path and s.http_port is None
    with pytest.raises(SettingsError):
        Settings.from_env({"LOKI_URL": "nope"}, needed={"LOKI_URL"})


def fake_running_stack(run_dir, **env):
    """Settings saved by `up` plus a live pid in supervisord.pid (this test's own process)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    started = Settings.from_env({"RUN_DIR": str(run_dir), **env})
    started.save()
    (run_dir / "supervisord.pid").write_text(str(os.getpid()))
    return started


def test_a_running_stack_is_addressed_with_its_own_settings(tmp_path, capsys):
    started = fake_running_stack(tmp_path / "run", APP_INSTANCES="2", LOG_DIR=str(tmp_path / "log"))
    shell = {"RUN_DIR": str(tmp_path / "run"), "APP_INSTANCES": "3", "HTTP_PORT": "abc",
             "LOG_DIR": str(tmp_path / "elsewhere")}
    got = cli.settings_for({"LOG_DIR"}, shell)
    assert got.values == started.values
    assert capsys.readouterr().err.strip() == (
        f"stack: using the settings the stack in {tmp_path / 'run'} was started with; ignoring"
        " HTTP_PORT, APP_INSTANCES, LOG_DIR from the environment")
    # without a running stack: only what the command needs is read (and must be good)
    (tmp_path / "run" / "supervisord.pid").unlink()
    assert cli.settings_for({"LOG_DIR"}, shell).log_dir == tmp_path / "elsewhere"
    with pytest.raises(SettingsError, match="HTTP_PORT=abc"):
        cli.settings_for(None, shell)


def test_saved_settings_keep_an_empty_value_empty(tmp_path, monkeypatch):
    """No Alloy at `up` means no Alloy for the running stack, even if there is one now."""
    fake_running_stack(tmp_path / "run", ALLOY_BIN="off")
    alloy = tmp_path / "bin" / "alloy"
    alloy.parent.mkdir()
    alloy.write_text("#!/bin/sh\n")
    alloy.chmod(0o755)
    # the default is where stackctl.tools finds it: ALLOY_BIN's path in its environment
    monkeypatch.setenv("ALLOY_BIN", str(alloy))
    assert Settings.from_env({}).alloy_bin == str(alloy)
    assert settings.saved(tmp_path / "run").alloy_bin == ""


def test_help_lists_every_setting_without_the_venv():
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}
    result = subprocess.run([str(STACK), "help"], env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    listed = set(re.findall(r"^  ([A-Z][A-Z0-9_]+) ", result.stdout, re.M))
    assert listed == {s.name for s in SETTINGS}


def test_the_docs_settings_table_is_the_settings_definition():
    """docs/stack.md holds exactly what ./stack help --markdown generates from SETTINGS."""
    from stackctl import usage

    doc = (ROOT / "docs" / "stack.md").read_text()
    start, end = doc.index(usage.TABLE_BEGIN), doc.index(usage.TABLE_END) + len(usage.TABLE_END)
    assert doc[start:end] == usage.markdown_table(), \
        "docs/stack.md's settings table is stale: paste ./stack help --markdown there"
    rows = usage.markdown_table().splitlines()[3:-1]
    assert [row.split("`")[1] for row in rows] == [s.name for s in SETTINGS]


def test_up_says_in_one_line_where_the_lines_go(monkeypatch, capsys, tmp_path):
    from stackctl import tools

    monkeypatch.delenv("LOKI_BIN", raising=False)
    monkeypatch.delenv("ALLOY_BIN", raising=False)
    nowhere = tools.Tool("loki", "release", str(tmp_path / "none"), "test")
    monkeypatch.setitem(tools.TOOLS, "loki", nowhere)
    monkeypatch.setitem(tools.TOOLS, "alloy", nowhere)
    cli._say_log_path(Settings.from_env({}))
    assert capsys.readouterr().out == ("stack: no Loki binary (LOKI_BIN, .tools/bin/loki): the lines stay"
                                       " in the local files; for Loki and Alloy see docs/logs.md\n")
    cli._say_log_path(Settings.from_env({"LOKI_BIN": "off"}))
    assert capsys.readouterr().out.startswith("stack: LOKI_BIN=off: the lines stay in the local files")
    loki = tmp_path / "loki"
    loki.write_text("")
    s = Settings.from_env({"LOKI_BIN": str(loki), "LOKI_PORT": "3999"})
    assert s.runs_loki and s.loki_target == "http://127.0.0.1:3999" and not s.ships_with_alloy
    cli._say_log_path(s)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"stack: starting Loki ({loki}) at http://127.0.0.1:3999, data in {s.data_dir / 'loki'}"
    assert "no Alloy binary (ALLOY_BIN, .tools/bin/alloy)" in out[1]
    # a LOKI_URL of the user's own wins: no Loki of ours
    s = Settings.from_env({"LOKI_BIN": str(loki), "LOKI_URL": "http://loki.example:3100"})
    assert not s.runs_loki and s.loki_target == "http://loki.example:3100"
