"""``./stack trace --table``: every step with its clock time, source and detail; the hops."""
from __future__ import annotations

from datetime import datetime

MEASURED_NOTE = ("measured = a layer's clock reading as logged; derived = computed from measured numbers; "
                 "NGINX times have 1 ms resolution, uWSGI/app 1 us")


def clock(t: float | None) -> str:
    """A time of day (local) to the microsecond, or ``-``."""
    return "-" if t is None else datetime.fromtimestamp(t).strftime("%H:%M:%S.%f")


def heading(trace: dict, where: str = "") -> list[str]:
    """What every view starts with: the request, where its lines came from, why detail was kept."""
    s = trace["summary"]
    head = f"request {trace['request_id']}"
    if s:
        head += f": {s['method']} {s['uri']} -> {s['status']}, {s['bytes_sent']} bytes, " \
                f"{s['request_time_ms']} ms at NGINX"
        head += ", static (NGINX only)" if s["static"] else f", upstream {s['upstream'] or '?'}"
        if s["retry"]:
            head += " (after a RETRY)"
        if s.get("traceparent"):
            head += f"\ntraceparent {s['traceparent']}"
    out = [head]
    if where:
        out.append(f"lines from {where}: {trace['records']}")
    why = kept_why(trace)
    if why:
        out.append(why)
    return out


def kept_why(trace: dict) -> str:
    """Why the app's fine events are in the logs ('' when they are not)."""
    kept = trace.get("kept_detail") or {}
    found = len(kept.get("events") or [])
    why = kept.get("why")
    if why == "debug":
        return f"detail: {found} fine events of the app (LOG_LEVEL=DEBUG writes them for every request)"
    reason = {"error": "the request failed (5xx or an unhandled exception)",
              "slow": "the request was slow (LOG_DETAIL_SLOW_MS)",
              "sampled": "the request was sampled (LOG_DETAIL_SAMPLE)"}.get(why)
    if not reason:
        return ""
    text = f"detail kept because {reason}: {found} fine events of the app"
    if kept.get("kept") is not None and kept["kept"] != found:
        text += f" (the app kept {kept['kept']})"
    if kept.get("dropped"):
        text += f", {kept['dropped']} more dropped (over the per-request bound)"
    return text


def footer(trace: dict) -> list[str]:
    """The order check, the skew, what is missing, the notes."""
    order = trace["order"]
    chain = " <= ".join(str(n) for n in order["chain"])
    out = [f"order {chain}: " + ("consistent" if order["consistent"]
                                 else "INCONSISTENT: " + "; ".join(order["violations"]))]
    if trace["browser_skew_ms"] is not None:
        out.append(f"browser clock skew: {trace['browser_skew_ms']:+.3f} ms (subtracted from browser times)")
    if trace["missing"]:
        out.append("missing steps: " + ", ".join(map(str, trace["missing"])))
    out += [f"note: {note}" for note in trace["notes"]]
    return out


def render(trace: dict, where: str = "") -> str:
    out = heading(trace, where)
    out.append("")
    out.append(f"{'#':>2}  {'step':<37} {'layer':<9} {'time (local)':<15} {'+ms':>9}  {'source':<8}  detail")
    events = (trace.get("kept_detail") or {}).get("events") or []
    for st in trace["steps"]:
        offset = "" if st["offset_ms"] is None else f"{st['offset_ms']:.3f}"
        source = "MISSING" if st["time"] is None else st["source"]
        out.append(f"{st['number']:>2}  {st['name']:<37} {st['layer']:<9} {clock(st['time']):<15} "
                   f"{offset:>9}  {source:<8}  {st['detail']}")
        for e in (e for e in events if e["step"] == st["number"]):
            at = "" if e["offset_ms"] is None else f"{e['offset_ms']:.3f}"
            took = "" if e["duration_ms"] is None else f"{e['duration_ms']:.3f} ms"
            out.append(f"{'':>2}    {e['event']:<35} {'app':<9} {clock(e['start']):<15} {at:>9}  "
                       f"{took:<8}  {e['text']}")
    out.append("")
    out.append("hops")
    for h in trace["hops"]:
        ms = "-" if h["ms"] is None else f"{h['ms']:.3f} ms"
        source = "MISSING" if h["ms"] is None else h["source"]
        out.append(f"  {h['name']:<52} {ms:>12}  {source:<8}  {h['detail']}")
    out.append("")
    out += footer(trace)
    out.append(MEASURED_NOTE)
    return "\n".join(out)
