"""Which log lines of one request id each step reads (pure: records in any order).

A client may reuse an id and NGINX may retry on another uWSGI instance, so an id can
have several lines per layer: the trace follows the first NGINX line and the uWSGI (and
app) lines of the instance that answered it; the others become notes.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from .. import logfiles

#: The app's fine events, written at DEBUG, or kept for a failed, slow or sampled request
#: (then with ``"detail": true``, before ``request.finished``).
DETAIL_EVENTS = ("request.started", "db.query", "template.rendered", "listing.parsed",
                 "components.retrieved", "log.record")


def number(value) -> float | None:
    """A finite JSON number as a float; anything else (text, bool, NaN) is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    return None


def seconds_from_us(value) -> float | None:
    """Epoch microseconds (an int field) as epoch seconds."""
    return value / 1e6 if isinstance(value, int) and not isinstance(value, bool) else None


def to_ms(seconds: float | None) -> float | None:
    """Seconds as milliseconds, to the microsecond."""
    return None if seconds is None else round(seconds * 1000, 3)


def nginx_list(value) -> list[str]:
    """NGINX's ``$upstream_*`` value as a list: ``"a, b : c"`` -> ``["a", "b", "c"]``.

    ``, `` separates servers tried within one upstream group (a retry), `` : `` an
    internal redirect to another group; both are attempts in order.
    """
    if value is None:
        return []
    text = str(value).strip()
    if not text:
        return []
    return [part.strip() for part in re.split(r"\s*[,:]\s+|\s+:\s*", text) if part.strip()]


def upstream_seconds(value: str | None) -> float | None:
    """One ``$upstream_*_time`` value in seconds; None for ``-`` (no connection made)."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) else None


def instance_of(addr: str) -> str:
    """``unix:/run/app1.sock`` -> ``app1``; ``127.0.0.1:3031`` stays as it is."""
    if addr.startswith("unix:"):
        return Path(addr[5:]).stem
    return addr


@dataclass
class Attempt:
    """One upstream server NGINX tried, in order."""
    addr: str
    status: str | None
    connect_s: float | None
    header_s: float | None
    response_s: float | None

    @property
    def instance(self) -> str:
        return instance_of(self.addr)

    def as_dict(self) -> dict:
        return {"addr": self.addr, "instance": self.instance, "status": self.status,
                "connect_s": self.connect_s, "header_s": self.header_s, "response_s": self.response_s}


def attempts_of(nginx: dict) -> list[Attempt]:
    addrs = nginx_list(nginx.get("upstream_addr"))
    columns = [nginx_list(nginx.get(f"upstream_{name}")) for name in
               ("status", "connect_time", "header_time", "response_time")]

    def at(values, i):
        return values[i] if i < len(values) else None

    return [Attempt(addr, at(columns[0], i), upstream_seconds(at(columns[1], i)),
                    upstream_seconds(at(columns[2], i)), upstream_seconds(at(columns[3], i)))
            for i, addr in enumerate(addrs)]


@dataclass
class RequestLines:
    """The lines of one request id that the steps read."""
    request_id: str
    records: list[dict]
    nginx: dict | None = None
    uwsgi: dict | None = None
    other_uwsgi: list[dict] = field(default_factory=list)
    app: list[dict] = field(default_factory=list)
    browser: dict | None = None
    attempts: list[Attempt] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def static(self) -> bool:
        """NGINX answered itself (a static file, or an error page such as 401, 404, 429)."""
        return self.nginx is not None and not self.attempts and self.uwsgi is None and not self.app

    def app_event(self, name: str, last: bool = False) -> dict | None:
        found = [r for r in self.app if r.get("event") == name]
        return (found[-1] if last else found[0]) if found else None

    @property
    def finished(self) -> dict | None:
        """The app's wide event, ``request.finished``."""
        return self.app_event("request.finished", last=True)

    @property
    def detail(self) -> list[dict]:
        """The fine events, in time order."""
        return [r for r in self.app if r.get("event") in DETAIL_EVENTS]


def pick(records, request_id: str) -> RequestLines:
    """The lines of ``request_id`` among ``records`` (any order, any mix of layers)."""
    mine = [r for r in records if isinstance(r, dict) and r.get("request_id") == request_id]
    lines = RequestLines(request_id, mine)
    lines.nginx = _pick_nginx(mine, lines.notes)
    lines.attempts = attempts_of(lines.nginx) if lines.nginx else []
    lines.uwsgi, lines.other_uwsgi = _pick_uwsgi(mine, lines.attempts)
    lines.app = _pick_app(mine, lines.uwsgi)
    lines.browser = _pick_browser(mine)
    return lines


def _pick_nginx(records: list[dict], notes: list[str]) -> dict | None:
    found = [r for r in records if (r.get("event") == "nginx.access" or
                                     (r.get("layer") == "nginx" and "msec" in r))
             and number(r.get("msec")) is not None]
    if len(found) > 1:
        notes.append(f"{len(found)} NGINX lines carry this id (the client reused it); tracing the first")
    found.sort(key=lambda r: number(r["msec"]) - (number(r.get("request_time")) or 0))
    return found[0] if found else None


def _pick_uwsgi(records: list[dict], attempts: list[Attempt]) -> tuple[dict | None, list[dict]]:
    found = sorted((r for r in records if r.get("event") == "uwsgi.request"
                    and isinstance(r.get("start_us"), int)), key=lambda r: r["start_us"])
    if not found:
        return None, []
    chosen = None
    if attempts:  # the instance that answered: NGINX's last attempt
        chosen = next((r for r in reversed(found) if r.get("instance") == attempts[-1].instance), None)
    chosen = chosen or found[-1]
    return chosen, [r for r in found if r is not chosen]


def _pick_app(records: list[dict], uwsgi: dict | None) -> list[dict]:
    found = [r for r in records if r.get("layer") == "app" and logfiles.event_time(r) is not None]
    if uwsgi is not None:
        same = [r for r in found if r.get("instance") == uwsgi.get("instance")
                and (r.get("pid") is None or uwsgi.get("pid") is None or r.get("pid") == uwsgi.get("pid"))]
        found = same or found
    found.sort(key=logfiles.event_time)
    return found


def _pick_browser(records: list[dict]) -> dict | None:
    found = [r for r in records if r.get("event") == "browser.timing" and number(r.get("timeOrigin")) is not None]
    found.sort(key=lambda r: logfiles.event_time(r) or 0.0)
    return found[0] if found else None
