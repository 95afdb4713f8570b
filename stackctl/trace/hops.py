"""The durations between the steps, and the check that the steps are in time order."""
from __future__ import annotations

from .lines import RequestLines, number, to_ms
from .steps import ORDER_CHAIN, RESOLUTION_S


def time_of(steps: dict, n: int) -> float | None:
    """Step n's time (None when it is missing or not a step of this request)."""
    s = steps.get(n)
    return s["time"] if s else None


def hops(req: RequestLines, steps: dict) -> list[dict]:
    """Durations between steps. They partition NGINX's request_time when all are known."""
    def at(n):  # step n's time
        return time_of(steps, n)

    out = []

    def add(name, seconds, source, detail, *, clamp=False):
        note = ""
        if seconds is not None and clamp and seconds < 0:
            note = f" (computed {seconds * 1000:.3f} ms: below NGINX's 1 ms resolution, shown as 0)"
            seconds = 0.0
        out.append({"name": name, "ms": to_ms(seconds), "source": source if seconds is not None else "missing",
                    "detail": detail + note})

    if at(1) is not None and at(2) is not None:
        add("client -> NGINX (network)", at(2) - at(1), "derived", "step 2 - step 1 (browser clock aligned)")
    attempts = req.attempts
    connect = None
    if attempts and all(a.connect_s is not None for a in attempts):
        connect = sum(a.connect_s for a in attempts)
    if steps.get(4) is not None:  # proxied request
        edge = None
        if at(4) is not None and at(2) is not None:
            edge = (at(4) - at(2)) - (connect or 0.0)
        add("NGINX edge before upstream", edge, "derived",
            "step 4 - step 2 - connect (NGINX reading the request, picking a server, "
            "hand-off to uWSGI)", clamp=True)
        add("connect to uWSGI", connect, "measured", "upstream_connect_time" +
            (" (all attempts)" if len(attempts) > 1 else ""))
        finished = req.finished
        flask = (number(finished.get("duration_ms")) or 0.0) / 1000 if finished is not None else None
        outside = None
        if req.uwsgi is not None and flask is not None and at(9) is not None and at(4) is not None:
            outside = (at(9) - at(4)) - flask
        add("uWSGI outside Flask", outside, "derived",
            "step 9 - step 4 - Flask duration_ms (WSGI translation both ways)", clamp=True)
        add("Flask (request start -> finished)", flask, "measured", "request.finished duration_ms")
        db = steps[6].get("db_ms") if steps.get(6) else None
        add("  of which database", None if db is None else db / 1000, "measured",
            "db_ms of request.finished (at DEBUG: the sum of db.query duration_ms)")
        back = at(11) - at(9) if at(9) is not None and at(11) is not None else None
        add("back to the client (uWSGI end -> NGINX sent)", back, "derived", "step 11 - step 9", clamp=True)
        tail = steps[9].get("uwsgi_logged_end") if steps.get(9) else None
        if tail is not None:
            add("uWSGI post-response cleanup (off the client's path)", tail - at(9), "derived",
                "uWSGI's logged end - step 9")
    else:
        add("NGINX serving the static file", number(req.nginx.get("request_time")) if req.nginx else None,
            "measured", "request_time")
    if at(11) is not None and at(12) is not None:
        add("NGINX -> client (network, receive)", at(12) - at(11), "derived",
            "step 12 - step 11 (browser clock aligned)")
    return out


def check_order(steps: list[dict]) -> dict:
    """client send <= NGINX receive <= uWSGI start <= Flask start <= Flask end <= uWSGI end
    <= NGINX end <= client receive, each comparison allowing both layers' clock resolution."""
    by_number = {s["number"]: s for s in steps}
    present = [by_number[n] for n in ORDER_CHAIN if n in by_number and by_number[n]["time"] is not None]
    violations = []
    for a, b in zip(present, present[1:]):
        slack = RESOLUTION_S[a["layer"].split("/")[0]] + RESOLUTION_S[b["layer"].split("/")[0]]
        if a["time"] > b["time"] + slack:
            violations.append(f"step {a['number']} is {(a['time'] - b['time']) * 1000:.3f} ms "
                              f"after step {b['number']}")
    return {"chain": [s["number"] for s in present], "consistent": not violations, "violations": violations}
