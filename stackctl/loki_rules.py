"""Writes Loki's recording rules (observability/loki/rules/fake/pcbuilder.yaml).

``python3 -m stackctl.loki_rules`` writes the file; a test fails when it and this module
differ (as for the dashboards). The rules parse the JSON lines the way the dashboards'
queries do (stackctl/dashboards.py) and record a small set of RED series that Loki's ruler
remote-writes to Prometheus, where the alerts are (observability/prometheus/rules/).

Every count is over ``[1m] offset 10s``: the last 10 s are left out so that lines still on
their way (Alloy tails files, the app pushes every LOKI_BATCH_INTERVAL) are in Loki when
their minute is counted. Series that alerts read as "now" are filled with 0 (``or
vector(0)``): Loki writes no staleness marker when a series stops.
"""
from __future__ import annotations

import sys

import yaml

from .settings import ROOT

RULES_FILE = ROOT / "observability" / "loki" / "rules" / "fake" / "pcbuilder.yaml"
#: "fast enough" thresholds (s) recorded for the latency SLO; SLO_LATENCY_THRESHOLD is one
FAST_THRESHOLDS = ("0.1", "0.3", "1")
DROP_REASONS = ("overflow", "rejected", "shutdown")
FAIL_REASONS = ("unreachable", "timeout", "rate_limited", "http_5xx")

WINDOW = "[1m] offset 10s"
APP = '{service_name="pc-builder", layer="app"}'
UWSGI = '{service_name="pc-builder", layer="uwsgi"} | json event, status, uri | event="uwsgi.request"'
NGINX = ('{service_name="pc-builder", layer="nginx"} | json event, status, uri, request_time, upstream_addr,'
         ' upstream_status, upstream_connect_time | event="nginx.access"')
FINISHED = f'{APP} | json event, status, path, route | event="request.finished"'
STATUS_CLASS = 'status_class=`{{ substr 0 1 .status }}xx`'
#: health checks reach uWSGI without NGINX (compose's healthcheck, ./stack status)
NO_PROBES = '!~ "/pc-builder-app/(healthz|readyz).*"'


def kind(field: str) -> str:
    """label_format: page, api, static, probe or other, from a URI (or the app's path)."""
    f = f".{field}"
    return ('kind=`{{ if hasPrefix "/pc-builder-app/static/" %s }}static'
            '{{ else if hasPrefix "/pc-builder-app/api/" %s }}api'
            '{{ else if or (hasPrefix "/pc-builder-app/healthz" %s) (hasPrefix "/pc-builder-app/readyz" %s) }}probe'
            '{{ else if hasPrefix "/pc-builder-app/" %s }}page{{ else }}other{{ end }}`') % ((f,) * 5)


def _rule(name: str, expr: str, **labels: str) -> dict:
    rule = {"record": name, "expr": expr}
    if labels:
        rule["labels"] = labels
    return rule


def _count_or_zero(selector: str) -> str:
    return f"(sum(count_over_time({selector} {WINDOW})) or vector(0))"


def requests() -> list[dict]:
    """Requests per layer, kind (and the app's Flask route) and status class; the totals."""
    name = "pcbuilder:requests:count1m"
    return [
        _rule(name, f"sum by (env, layer, kind, status_class) (count_over_time({NGINX}"
                    f" | label_format {kind('uri')}, {STATUS_CLASS} {WINDOW}))"),
        _rule(name, f"sum by (env, layer, kind, status_class) (count_over_time({UWSGI}"
                    f" | label_format {kind('uri')}, {STATUS_CLASS} {WINDOW}))"),
        _rule(name, f"sum by (env, layer, kind, route, status_class) (count_over_time({FINISHED}"
                    f" | label_format {kind('path')}, {STATUS_CLASS}, route=`{{{{ or .route \"none\" }}}}` {WINDOW}))"),
        _rule("pcbuilder:layer_requests:count1m", _count_or_zero(f"{NGINX} | uri {NO_PROBES}"), layer="nginx"),
        _rule("pcbuilder:layer_requests:count1m", _count_or_zero(f"{UWSGI} | uri {NO_PROBES}"), layer="uwsgi"),
        _rule("pcbuilder:layer_requests:count1m", _count_or_zero(f"{FINISHED} | path {NO_PROBES}"), layer="app"),
    ]


def upstream() -> list[dict]:
    """NGINX's attempts on the instances (upstream_* are lists, one entry per attempt, at most
    two: uwsgi_next_upstream_tries): those that reached one (connect time not "-"), those that
    reached one and got no answer (502/504: the request died inside uWSGI), failed ones."""
    edge = f"{NGINX} | uri {NO_PROBES}"
    last, first = '"(.*, )?[0-9.]+"', '"[0-9.]+, .+"'
    attempts = (f"{_count_or_zero(f'{edge} | upstream_connect_time =~ {last}')}"
                f" + {_count_or_zero(f'{edge} | upstream_connect_time =~ {first}')}")
    lost = " + ".join(_count_or_zero(f"{edge} | {flt}") for flt in (
        'upstream_status =~ "50[24]" | upstream_connect_time =~ "[0-9.]+"',
        'upstream_status =~ "50[24], .+" | upstream_connect_time =~ "[0-9.]+, .+"',
        'upstream_status =~ ".+, 50[24]" | upstream_connect_time =~ ".+, [0-9.]+"'))
    failures = "pcbuilder:upstream_failures:count1m"
    return [
        _rule("pcbuilder:upstream_attempts:count1m", attempts),
        _rule("pcbuilder:upstream_lost:count1m", lost),
        _rule(failures, f'sum by (env, upstream) (count_over_time({NGINX} | upstream_status =~ "50[234]"'
                        f' | label_format upstream=`{{{{ .upstream_addr }}}}` {WINDOW}))', attempt="only"),
        _rule(failures, f'sum by (env, upstream) (count_over_time({NGINX} | upstream_status =~ "50[234], .+"'
                        f' | label_format upstream=`{{{{ regexReplaceAll ", .*" .upstream_addr "" }}}}` {WINDOW}))',
              attempt="first"),
        _rule(failures, f'sum by (env, upstream) (count_over_time({NGINX} | upstream_status =~ ".+, 50[234]"'
                        f' | label_format upstream=`{{{{ regexReplaceAll ".*, " .upstream_addr "" }}}}` {WINDOW}))',
              attempt="second"),
    ]


def latency() -> list[dict]:
    quantiles = [_rule("pcbuilder:request_time_seconds:quantile1m",
                       f'quantile_over_time({q}, {NGINX} | label_format {kind("uri")} | unwrap request_time'
                       f' | __error__="" {WINDOW}) by (env, kind)', quantile=q) for q in ("0.5", "0.95", "0.99")]
    fast = [_rule("pcbuilder:page_requests_fast:count1m",
                  f'sum by (env) (count_over_time({NGINX} | label_format {kind("uri")} | kind="page"'
                  f' | request_time <= {le} {WINDOW}))', le=le) for le in FAST_THRESHOLDS]
    return quantiles + fast


def app() -> list[dict]:
    """Exceptions, and what the app's Loki shipper reports (``loki.report``: counts per reason
    since its last report). Reports written while Loki was away arrive when it is back, with
    their own time: a 2-minute window (no offset) still counts those of a short outage."""
    rules = [_rule("pcbuilder:app_exceptions:count1m",
                   f'sum by (env, instance, route) (count_over_time({APP} | json event, route'
                   f' | event="request.failed" | label_format route=`{{{{ or .route "none" }}}}` {WINDOW}))')]
    for name, kind_, reasons in (("pcbuilder:shipper_dropped_lines:sum2m", "dropped", DROP_REASONS),
                                 ("pcbuilder:shipper_failed_pushes:sum2m", "failed", FAIL_REASONS)):
        rules += [_rule(name, f'sum by (env, instance) (sum_over_time({APP} | json event, n="{kind_}.{reason}"'
                              f' | event="loki.report" | unwrap n | __error__="" [2m]))', reason=reason)
                  for reason in reasons]
    return rules


def browser() -> list[dict]:
    return [_rule("pcbuilder:browser_timing_ms:quantile1m",
                  f'quantile_over_time({q}, {{service_name="pc-builder", layer="browser"}} | json event, kind,'
                  f' {end}, {start} | event="browser.timing" | label_format kind=`{{{{ or .kind "navigation" }}}}`,'
                  f' took=`{{{{ subf .{end} .{start} }}}}` | unwrap took | __error__="" {WINDOW}) by (env, kind)',
                  quantile=q, timing=name)
            for q, end, start, name in (("0.5", "responseEnd", "requestStart", "request_to_response"),
                                        ("0.95", "responseEnd", "requestStart", "request_to_response"),
                                        ("0.95", "loadEventEnd", "responseEnd", "response_to_load"))]


def build() -> dict:
    # the heartbeat: Prometheus alerts when it stops (LokiRulerSilent)
    heartbeat = [_rule("pcbuilder:ruler_heartbeat", "vector(1)")]
    rules = requests() + upstream() + latency() + app() + browser() + heartbeat
    return {"groups": [{"name": "pcbuilder-red", "rules": rules}]}


HEADER = ("# Written by `python3 -m stackctl.loki_rules` (stackctl/loki_rules.py): edit that, not this file.\n"
          "# Loki's ruler records these series from the logs and remote-writes them to Prometheus\n"
          "# (docs/alerts.md lists each one).\n")


def render() -> str:
    return HEADER + yaml.safe_dump(build(), sort_keys=False, width=100000, allow_unicode=True)


def main() -> int:
    RULES_FILE.write_text(render())
    print(f"wrote {RULES_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
