"""The alerting files and ``./stack alerts`` without running anything: Loki's rule file is
what stackctl/loki_rules.py writes, the templates render with the settings (every
placeholder has a value, the objectives and durations land where they belong), the
settings refuse bad values in one line, and the command's formatting."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import yaml

from stackctl import alerts, cli, loki_rules, render
from stackctl.settings import Settings, SettingsError

# Prometheus's /api/v1/alerts entries, shaped as Prometheus 2.42 answers (a wire-format
# sample written here, not a recording: the real tier reads the real answer)
RAW = [
    {"labels": {"alertname": "Watchdog", "severity": "none"}, "annotations": {"summary": "Always firing"},
     "state": "firing", "activeAt": "2026-12-02T18:00:00.123456789Z", "value": "1e+00"},
    {"labels": {"alertname": "LayerSilent", "severity": "ticket", "layer": "uwsgi"},
     "annotations": {"summary": "NGINX passed 12 requests\n  to the app", "runbook": "docs/alerts.md#layersilent"},
     "state": "pending", "activeAt": "2026-12-02T18:05:00Z", "value": "1.2e+01"},
    {"labels": {"alertname": "AvailabilityFastBurn", "severity": "page", "slo": "availability", "window": "1h"},
     "annotations": {"summary": "50% of requests failed"}, "state": "firing",
     "activeAt": "2026-12-02T18:06:07.5Z", "value": "5e-01"},
]


def test_alerts_are_flat_records_firing_first_watchdog_last():
    got = alerts.records(RAW)
    assert [(a["name"], a["state"]) for a in got] == [
        ("AvailabilityFastBurn", "firing"), ("LayerSilent", "pending"), ("Watchdog", "firing")]
    silent = got[1]
    assert silent == {"name": "LayerSilent", "state": "pending", "severity": "ticket",
                      "summary": "NGINX passed 12 requests to the app", "since": "2026-12-02T18:05:00Z",
                      "value": "1.2e+01", "labels": {"layer": "uwsgi"}, "runbook": "docs/alerts.md#layersilent"}
    json.dumps(got)  # what --json prints


def test_the_table_has_name_severity_since_and_summary():
    lines = alerts.text(alerts.records(RAW)).splitlines()
    assert lines[0].split() == ["STATE", "SEVERITY", "SINCE", "NAME", "SUMMARY"]
    assert lines[1].split()[:6] == ["firing", "page", "2026-12-02", "18:06:07", "UTC",
                                    "AvailabilityFastBurn{window=1h}"]
    assert lines[1].endswith("50% of requests failed")
    assert "LayerSilent{layer=uwsgi}" in lines[2] and lines[2].startswith("pending")
    assert lines[3].startswith("firing") and "Watchdog" in lines[3]
    assert alerts.text([]) == "no alert is firing or pending"


@pytest.mark.parametrize("raw, shown", [("2026-12-02T18:23:10.347123456Z", "2026-12-02 18:23:10"),
                                        ("2026-12-02T18:23:10Z", "2026-12-02 18:23:10"),
                                        ("2026-12-02T19:23:10+01:00", "2026-12-02 18:23:10"),
                                        ("garbage", "garbage")])
def test_since_is_utc_to_the_second(raw, shown):
    assert alerts._since(raw) == shown


def test_no_stack_is_one_line_and_exit_0(tmp_path, capsys):
    s = Settings.from_env({"RUN_DIR": str(tmp_path)})
    assert cli.cmd_alerts(s, SimpleNamespace(json=False)) == 0
    assert capsys.readouterr().out.strip() == f"stack: no alerts: no stack runs from {tmp_path}, so no ruler either"


def test_a_prometheus_that_does_not_answer_is_one_error(tmp_path):
    from tests.support.env import free_port
    with pytest.raises(alerts.AlertsError, match="did not answer"):
        alerts.fetch(f"http://127.0.0.1:{free_port()}", timeout=1)


def test_the_loki_rule_file_is_what_the_generator_writes():
    assert loki_rules.RULES_FILE.read_text() == loki_rules.render(), "run python3 -m stackctl.loki_rules"
    names = {r["record"] for g in yaml.safe_load(loki_rules.render())["groups"] for r in g["rules"]}
    assert all(n.startswith("pcbuilder:") for n in names)


def _rendered(tmp_path, **env) -> dict:
    s = Settings.from_env({"RUN_DIR": str(tmp_path), **env})
    render.write_alerting(s)
    out = {p.name: p.read_text() for p in (tmp_path / "prometheus" / "rules").glob("*.yaml")}
    out["prometheus.yml"] = (tmp_path / "prometheus" / "prometheus.yml").read_text()
    out["alertmanager.yml"] = (tmp_path / "alertmanager.yml").read_text()
    return out


def test_the_templates_render_with_the_settings(tmp_path):
    files = _rendered(tmp_path, SLO_AVAILABILITY="0.995", SLO_LATENCY_THRESHOLD="1", ALERT_FOR="7s",
                      ALERT_BURN_FOR="0s", ALERT_EVAL_INTERVAL="5s", ALERTMANAGER_PORT="9999")
    assert set(files) == {"slo.yaml", "pipeline.yaml", "prometheus.yml", "alertmanager.yml"}
    assert not any("${" in text for text in files.values())
    slo = yaml.safe_load(files["slo.yaml"])
    rules = {r.get("alert") or r["record"]: r for g in slo["groups"] for r in g["rules"]}
    assert "14.4 * (1 - 0.995)" in rules["AvailabilityFastBurn"]["expr"]
    assert rules["AvailabilityFastBurn"]["for"] == "0s" and rules["AvailabilityFastBurn"]["labels"]["severity"] == "page"
    assert 'le="1"' in files["slo.yaml"]
    pipeline = {r.get("alert"): r for g in yaml.safe_load(files["pipeline.yaml"])["groups"] for r in g["rules"]}
    assert pipeline["LayerSilent"]["for"] == "7s"
    config = yaml.safe_load(files["prometheus.yml"])
    assert config["global"]["evaluation_interval"] == "5s"
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:9999"]
    for alert in [*pipeline.values(), *(r for r in rules.values() if "alert" in r)]:
        if alert.get("alert"):
            assert alert["labels"]["severity"] and alert["annotations"]["summary"]
            assert alert["annotations"]["runbook"].endswith("#" + alert["alert"].lower())


def test_the_receiver_is_the_webhook_only_when_its_url_is_set(tmp_path):
    keep = yaml.safe_load(_rendered(tmp_path / "a")["alertmanager.yml"])
    assert keep["route"]["receiver"] == "keep"
    hook = yaml.safe_load(_rendered(tmp_path / "b", ALERT_WEBHOOK_URL="https://hooks.example/x")["alertmanager.yml"])
    assert hook["route"]["receiver"] == "webhook"
    assert hook["receivers"][1]["webhook_configs"][0]["url"] == "https://hooks.example/x"


@pytest.mark.parametrize("name, value, line", [
    ("SLO_AVAILABILITY", "1", "SLO_AVAILABILITY=1 is not an objective between 0 and 1, like 0.999"),
    ("SLO_LATENCY", "99%", "SLO_LATENCY=99% is not a number"),
    ("SLO_LATENCY_THRESHOLD", "0.25", "SLO_LATENCY_THRESHOLD=0.25 is not one of the recorded thresholds (0.1, 0.3, 1 s)"),
    ("ALERT_FOR", "5 minutes", "ALERT_FOR='5 minutes' is not a duration like 30s or 5m"),
    ("ALERT_WEBHOOK_URL", "hooks.example", "ALERT_WEBHOOK_URL=hooks.example is not an http:// or https:// URL"),
])
def test_a_bad_alerting_setting_is_one_line(name, value, line):
    with pytest.raises(SettingsError) as exc:
        Settings.from_env({name: value})
    assert exc.value.problems == [line]


def test_the_render_script_and_stackctl_render_the_same(tmp_path):
    """observability/render-config.sh (compose) gives the bytes stackctl/render.py gives."""
    import subprocess
    s = Settings.from_env({"RUN_DIR": str(tmp_path)})
    render.write_alerting(s)
    env = {"PATH": "/usr/bin:/bin", **render.alerting_values(s)}
    for template, ours in [(render.PROMETHEUS_TEMPLATE, tmp_path / "prometheus" / "prometheus.yml"),
                           (render.ALERTMANAGER_TEMPLATE, tmp_path / "alertmanager.yml"),
                           *[(t, tmp_path / "prometheus" / "rules" / t.name.removesuffix(".template"))
                             for t in render.prometheus_rule_templates()]]:
        out = tmp_path / "sh-out"
        subprocess.run(["sh", str(render.ROOT / "observability" / "render-config.sh"), str(template), str(out)],
                       env=env, check=True)
        assert out.read_text() == ours.read_text(), template.name
    missing = subprocess.run(["sh", str(render.ROOT / "observability" / "render-config.sh"),
                              str(render.ALERTMANAGER_TEMPLATE), str(tmp_path / "x")],
                             env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert missing.returncode == 1 and "needs a value for ALERT_RECEIVER" in missing.stderr


def test_up_says_in_one_line_whether_it_runs_the_alerts(monkeypatch, capsys, tmp_path):
    from stackctl import tools

    loki = tmp_path / "loki"
    loki.write_text("")
    for name in ("PROMETHEUS_BIN", "ALERTMANAGER_BIN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(tools.TOOLS, "prometheus", tools.Tool("prometheus", "apt", str(tmp_path / "none"), "t"))
    s = Settings.from_env({"LOKI_BIN": str(loki)})
    assert s.runs_loki and not s.runs_alerting
    cli._say_alerting(s)
    assert capsys.readouterr().out == (f"stack: no alerts ({tmp_path / 'none'} not found (PROMETHEUS_BIN)): Loki's"
                                       " ruler records for its own API only; for Prometheus and Alertmanager see"
                                       " docs/alerts.md\n")
    cli._say_alerting(Settings.from_env({"LOKI_BIN": str(loki), "PROMETHEUS_BIN": "off", "ALERTMANAGER_BIN": "off"}))
    assert "(PROMETHEUS_BIN=off, ALERTMANAGER_BIN=off)" in capsys.readouterr().out
    s = Settings.from_env({"LOKI_BIN": str(loki), "PROMETHEUS_BIN": str(loki), "ALERTMANAGER_BIN": str(loki),
                           "PROMETHEUS_PORT": "9990", "ALERTMANAGER_PORT": "9991"})
    assert s.runs_alerting
    cli._say_alerting(s)
    assert capsys.readouterr().out.startswith("stack: alerts: Prometheus at http://127.0.0.1:9990, Alertmanager at"
                                              " http://127.0.0.1:9991")
    # without a Loki of its own (LOKI_URL, or none) there is no ruler to alert from
    assert not Settings.from_env({"LOKI_BIN": str(loki), "LOKI_URL": "http://l:3100", "PROMETHEUS_BIN": str(loki),
                                  "ALERTMANAGER_BIN": str(loki)}).runs_alerting


def test_the_supervised_programs_use_the_rendered_files(tmp_path):
    loki = tmp_path / "loki"
    s = Settings.from_env({"LOKI_BIN": str(loki), "PROMETHEUS_BIN": "/p", "ALERTMANAGER_BIN": "/a",
                           "RUN_DIR": str(tmp_path), "PROMETHEUS_PORT": "9990", "ALERTMANAGER_PORT": "9991",
                           "ALERT_EVAL_INTERVAL": "15s"})
    conf = render.supervisord_conf(s)
    assert f"/p --config.file={tmp_path}/prometheus/prometheus.yml" in conf
    assert "--web.listen-address=127.0.0.1:9990 --web.enable-remote-write-receiver" in conf
    assert f"/a --config.file={tmp_path}/alertmanager.yml" in conf and "--cluster.listen-address=\n" in conf
    assert 'LOKI_RULER_INTERVAL="15s"' in conf and 'LOKI_REMOTE_WRITE_ENABLED="true"' in conf
    assert f'LOKI_RULES_DIR="{render.LOKI_RULES_DIR}"' in conf
    off = render.supervisord_conf(Settings.from_env({"LOKI_BIN": str(loki), "PROMETHEUS_BIN": "off",
                                                     "RUN_DIR": str(tmp_path)}))
    assert "[program:prometheus]" not in off and 'LOKI_REMOTE_WRITE_ENABLED="false"' in off
