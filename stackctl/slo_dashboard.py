"""The "SLOs and alerts" dashboard (observability/grafana/dashboards/slo-alerts.json), written
by ``python3 -m stackctl.dashboards`` with the others.

Everything comes from Prometheus (datasource uid ``prometheus``): the SLO series its rules
record from what Loki's ruler records from the logs (observability/prometheus/rules/
slo.yaml.template: ``pcbuilder:slo_availability:error_ratio`` and
``pcbuilder:slo_latency:slow_ratio`` per ``window``, and the objectives), and Prometheus's own
``ALERTS`` series for what fires. The alerts' ``dashboard`` annotations open it (uid
``slo-alerts``); every panel links on to the overview and the request-trace dashboards on
the same time range.
"""
from __future__ import annotations

from .dashboards import dashboard, link, override

PROMETHEUS = {"type": "prometheus", "uid": "prometheus"}
UID = "slo-alerts"
#: The windows the burn-rate alerts compare (the SRE workbook's 5m/1h, 30m/6h, 6h/3d pairs).
BURN_WINDOWS = ("5m", "30m", "1h", "6h", "3d")
#: Burn rates at which the alerts fire: fast burn pages at 14.4, slow burn tickets at 6 and 1.
BURN_THRESHOLDS = (1, 6, 14.4)
SLOS = {
    "availability": ("pcbuilder:slo_availability:error_ratio", "pcbuilder:slo_availability:objective",
                     "requests at the edge answered 5xx (health probes left out)"),
    "latency": ("pcbuilder:slo_latency:slow_ratio", "pcbuilder:slo_latency:objective",
                "page requests NGINX took longer than the threshold to answer"),
}
#: Alerts that fire by design (a dead man's switch), not counted as trouble.
ALWAYS_FIRING = "Watchdog"


def target(ref: str, expr: str, instant: bool, **extra) -> dict:
    return {"refId": ref, "datasource": PROMETHEUS, "editorMode": "code", "expr": expr,
            "instant": instant, "range": not instant, **extra}


def panel_links() -> list[dict]:
    """To the overview and the request-trace dashboards, on this dashboard's time range
    (a panel link interpolates ${__url_time_range}; keepTime is a dashboard link's)."""
    return [{**link(title, f"/d/{uid}?${{__url_time_range}}", "dashboard", tooltip), "keepTime": False}
            for title, uid, tooltip in (("Stack overview (same time range)", "stack-overview",
                                         "Traffic, errors and latency per layer"),
                                        ("Request trace (same time range)", "request-trace",
                                         "Follow one request_id through every layer"))]


def panel(pid: int, kind: str, title: str, description: str, grid: tuple[int, int, int, int],
          targets: list[dict], **extra) -> dict:
    x, y, w, h = grid
    return {"id": pid, "type": kind, "title": title, "description": description, "datasource": PROMETHEUS,
            "gridPos": {"x": x, "y": y, "w": w, "h": h}, "targets": targets, "links": panel_links(), **extra}


def thresholds(*steps: tuple[str, float | None]) -> dict:
    return {"mode": "absolute", "steps": [{"color": color, "value": value} for color, value in steps]}


def stat(pid: int, title: str, description: str, grid, expr: str, unit: str, decimals: int, steps,
         no_value: str = "no data") -> dict:
    return panel(pid, "stat", title, description, grid, [target("A", expr, instant=True)],
                 fieldConfig={"defaults": {"unit": unit, "decimals": decimals, "noValue": no_value,
                                           "color": {"mode": "thresholds"}, "thresholds": thresholds(*steps)},
                              "overrides": []},
                 options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                          "colorMode": "background", "graphMode": "none", "textMode": "value",
                          "justifyMode": "auto", "orientation": "auto", "showPercentChange": False,
                          "percentChangeColorMode": "standard", "wideLayout": True})


def budget_left(slo: str) -> str:
    """1 - what the last 30 days spent of the budget (1 - objective): 100 % untouched, 0 %
    spent, below 0 overspent."""
    ratio, objective, _ = SLOS[slo]
    return f'1 - {ratio}{{window="30d"}} / on() (1 - {objective})'


def burn_rate(slo: str) -> str:
    """How many times faster than the budget allows it burns, per window (1: it lasts
    exactly the 30 days)."""
    ratio, objective, _ = SLOS[slo]
    windows = "|".join(BURN_WINDOWS)
    return f'{ratio}{{window=~"{windows}"}} / on() group_left() (1 - {objective})'


def budget_stat(pid: int, slo: str, x: int) -> dict:
    what = SLOS[slo][2]
    return stat(pid, f"{slo.capitalize()}: error budget left (30 days)",
                f"Share of the 30-day error budget not yet spent: the budget is 1 - the objective of {what}. "
                "100 % untouched, 0 % spent, below 0 overspent. No data: no requests in 30 days.",
                (x, 0, 6, 5), budget_left(slo), "percentunit", 1,
                [("red", None), ("orange", 0), ("green", 0.25)])


def burn_panel(pid: int, slo: str, x: int) -> dict:
    what = SLOS[slo][2]
    return panel(pid, "timeseries", f"{slo.capitalize()}: burn rate by window",
                 f"Share of {what} over each window, divided by the budget (1 - objective). The alerts: 14.4 "
                 "over 1h and 5m pages (fast burn), 6 over 6h and 30m or 1 over 3d and 6h opens a ticket (slow "
                 "burn); the dashed lines mark 1, 6 and 14.4.", (x, 5, 12, 9),
                 [target("A", burn_rate(slo), instant=False, legendFormat="{{window}}")],
                 fieldConfig={"defaults": {
                     "unit": "none", "decimals": 1, "min": 0,
                     "thresholds": thresholds(("green", None), *(
                         (c, v) for c, v in zip(("yellow", "orange", "red"), BURN_THRESHOLDS))),
                     "custom": {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 0, "showPoints": "never",
                                "spanNulls": False, "thresholdsStyle": {"mode": "dashed"}}},
                     "overrides": []},
                 options={"legend": {"showLegend": True, "calcs": ["lastNotNull", "max"], "displayMode": "table",
                                     "placement": "right"},
                          "tooltip": {"mode": "multi", "sort": "desc"}})


def alerts_table(pid: int) -> dict:
    """What fires and what is pending now, from Prometheus's ALERTS series (the alerts it
    sends to Alertmanager), one row per alert."""
    shown = ["alertname", "alertstate", "severity", "slo", "window", "layer", "upstream", "instance", "reason"]
    return panel(pid, "table", "Alerts firing or pending now",
                 "Prometheus's ALERTS series at the end of the time range: each alert firing or pending (its "
                 "condition holds, not yet for its `for:`), with the labels that say what it is about. The "
                 "Watchdog fires always, by design. Summaries and runbooks: Alertmanager (Grafana's Alerting "
                 "pages, datasource Alertmanager) or `./stack alerts`.", (0, 14, 24, 9),
                 [target("A", "ALERTS", instant=True, format="table")],
                 fieldConfig={"defaults": {}, "overrides": [override(
                     "alertstate", custom__cellOptions={"type": "color-text"},
                     mappings=[{"type": "value", "options": {"firing": {"color": "red", "index": 0},
                                                             "pending": {"color": "orange", "index": 1}}}])]},
                 options={"showHeader": True, "cellHeight": "sm", "frameIndex": 0,
                          "sortBy": [{"displayName": "alertstate", "desc": False}]},
                 transformations=[{"id": "organize", "options": {
                     "excludeByName": {"Time": True, "Value": True, "__name__": True},
                     "indexByName": {name: i for i, name in enumerate(shown)},
                     "renameByName": {}, "includeByName": {}}}])


def slos_and_alerts() -> dict:
    firing = f'count(ALERTS{{alertstate="firing", alertname!="{ALWAYS_FIRING}"}}) or vector(0)'
    panels = [
        budget_stat(1, "availability", 0),
        budget_stat(2, "latency", 6),
        stat(3, "Availability over 30 days",
             "Share of requests at the edge (NGINX, health probes left out) not answered 5xx over the last "
             "30 days; the objective is SLO_AVAILABILITY.", (12, 0, 4, 5),
             f'1 - {SLOS["availability"][0]}{{window="30d"}}', "percentunit", 3,
             [("blue", None)]),
        stat(4, "Fast page requests over 30 days",
             "Share of page requests NGINX answered within SLO_LATENCY_THRESHOLD seconds over the last 30 days; "
             "the objective is SLO_LATENCY.", (16, 0, 4, 5),
             f'1 - {SLOS["latency"][0]}{{window="30d"}}', "percentunit", 2, [("blue", None)]),
        stat(5, "Alerts firing", f"Alerts firing now, the {ALWAYS_FIRING} left out (it always fires).",
             (20, 0, 4, 5), firing, "none", 0, [("green", None), ("red", 1)]),
        burn_panel(6, "availability", 0),
        burn_panel(7, "latency", 12),
        alerts_table(8),
    ]
    return dashboard(UID, "PC Builder / SLOs and alerts",
                     "Error budgets and burn rates of the availability and latency SLOs, and the alerts firing "
                     "now, from Prometheus (series Loki's ruler records from the logs).",
                     ["pc-builder", "slo", "alerts"], "now-3h", "1m",
                     [link("Stack overview", "/d/stack-overview", "dashboard", "Traffic, errors and latency"),
                      link("Request trace", "/d/request-trace", "external link", "Follow one request_id")],
                     [], panels)
