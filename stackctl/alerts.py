"""``./stack alerts``: the alerts firing or pending now, from the stack's Prometheus.

Prometheus evaluates the rules (observability/prometheus/rules), so it knows both states:
``pending`` (the condition holds, not yet for its ``for:``) and ``firing`` (sent to
Alertmanager). Standard library only, like the other commands that only read.
"""
from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from datetime import datetime, timezone

#: firing first, then pending; the always-firing Watchdog last
_STATE_ORDER = {"firing": 0, "pending": 1}


class AlertsError(Exception):
    """Prometheus did not answer, or not with its alerts."""


def fetch(prometheus: str, timeout: float = 5.0) -> list[dict]:
    """Every alert Prometheus has pending or firing, as ``./stack alerts --json`` prints them."""
    try:
        with urllib.request.urlopen(f"{prometheus}/api/v1/alerts", timeout=timeout) as resp:
            body = json.load(resp)
    except (OSError, ValueError) as exc:
        raise AlertsError(f"Prometheus at {prometheus} did not answer ({exc})") from None
    try:
        return records(body["data"]["alerts"])
    except (KeyError, TypeError) as exc:
        raise AlertsError(f"Prometheus at {prometheus} answered without its alerts ({exc!r})") from None


def records(raw: list[dict]) -> list[dict]:
    """Prometheus's ``/api/v1/alerts`` entries as flat records, sorted for reading."""
    out = []
    for a in raw:
        labels = dict(a.get("labels") or {})
        name = labels.pop("alertname", "?")
        out.append({"name": name, "state": a.get("state", "?"), "severity": labels.pop("severity", ""),
                    "summary": " ".join((a.get("annotations") or {}).get("summary", "").split()),
                    "since": a.get("activeAt", ""), "value": a.get("value", ""), "labels": labels,
                    "runbook": (a.get("annotations") or {}).get("runbook", "")})
    out.sort(key=lambda r: (r["name"] == "Watchdog", _STATE_ORDER.get(r["state"], 2), r["since"], r["name"]))
    return out


def _since(iso: str) -> str:
    """RFC 3339 as Prometheus writes it (nanoseconds, ``Z``) as UTC to the second."""
    try:  # fromisoformat takes at most microseconds: the fraction does not matter here
        when = datetime.fromisoformat(re.sub(r"\.\d+", "", iso).replace("Z", "+00:00"))
    except ValueError:
        return iso or "?"
    return when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def text(alerts: list[dict]) -> str:
    if not alerts:
        return "no alert is firing or pending"
    rows = [(a["state"], a["severity"] or "-", _since(a["since"]) + " UTC", _name(a), a["summary"]) for a in alerts]
    widths = [max(len(r[i]) for r in rows + [("STATE", "SEVERITY", "SINCE", "NAME", "")]) for i in range(4)]
    head = ("STATE", "SEVERITY", "SINCE", "NAME", "SUMMARY")
    lines = ["  ".join(c.ljust(w) for c, w in zip(row[:4], widths)) + "  " + row[4] for row in [head, *rows]]
    return "\n".join(line.rstrip() for line in lines)


def _name(alert: dict) -> str:
    """The alert's name with the labels that tell two of its instances apart (layer=uwsgi)."""
    extra = ",".join(f"{k}={v}" for k, v in sorted(alert["labels"].items()) if k not in ("slo",))
    return f"{alert['name']}{{{extra}}}" if extra else alert["name"]
