"""NGINX's upstream attempts of a request, from its access line: upstream_addr, _status and
_response_time list one entry per attempt ("unix:/run/a.sock, unix:/run/b.sock")."""
from __future__ import annotations

from typing import Callable


def failed_attempts(lines: list[dict], on: Callable[[str], bool]) -> list[tuple[dict, str, float]]:
    """Each attempt that did not get an answer from an instance whose address satisfies
    ``on``: (the request's line, the attempt's status, its time in seconds)."""
    found = []
    for r in lines:
        tries = zip(r["upstream_addr"].split(", "), r["upstream_status"].split(", "),
                    r["upstream_response_time"].split(", "))
        found += [(r, status, float(took)) for addr, status, took in tries if on(addr) and status != "200"]
    return found


def assert_none_waited(attempts: list[tuple[dict, str, float]]) -> None:
    """A stopping instance refuses at once (service/uwsgi.ini, shutdown-sockets) and NGINX
    takes it out of rotation before it is gone (nginx.conf.template, step 3). What this
    rules out: an attempt that timed out (504: uwsgi_connect_timeout, 2 s, on a vanished
    address) or that waited for an answer that never came (a connection queued in a
    stopping uWSGI, reset when its master exits, a second or more later). A refused
    attempt takes a millisecond; 0.5 s leaves room for a slow machine while staying far
    from both waits."""
    waited = [(r["request_id"], status, took) for r, status, took in attempts if status == "504" or took >= 0.5]
    assert waited == [], waited
