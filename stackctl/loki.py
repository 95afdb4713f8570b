"""``./stack`` talking to Loki's HTTP API: ``/ready`` at ``up``, ``query_range`` for trace.

Like the app (loki_shipping), it takes LOKI_URL as the whole address: no proxy or netrc
lookups from the environment. Failures become one short line, never urllib3's chain.
"""
from __future__ import annotations

import socket

import requests
from pcbuilder.loki_url import query_base, redacted


class LokiError(Exception):
    """Loki answered, but not what was asked for."""


class LokiUnreachable(LokiError):
    """No HTTP answer at all: refused, unresolvable host, timeout."""


def where(loki_url: str) -> str:
    """Loki's base URL as messages show it (no password)."""
    return redacted(query_base(loki_url))


def reason(exc: BaseException, timeout: float) -> str:
    """The root cause of a requests failure in a few words."""
    if isinstance(exc, requests.Timeout):
        return f"no answer within {timeout:g} s"
    seen, todo = set(), [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, socket.gaierror):
            return "its host name does not resolve"
        if isinstance(e, OSError) and e.strerror:
            return e.strerror.lower()
        todo += [getattr(e, "reason", None), e.__cause__, e.__context__,
                 *[a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]]
    return type(exc).__name__


def fetch(loki_url: str, path: str, params: dict | None = None, timeout: float = 10.0) -> requests.Response:
    """GET ``path`` (``/ready``, ``/loki/api/v1/query_range``) from Loki; unreachable: LokiUnreachable."""
    url = query_base(loki_url) + path
    session = requests.Session()
    session.trust_env = False
    try:
        return session.get(url, params=params, timeout=timeout)
    except requests.RequestException as exc:
        raise LokiUnreachable(f"Loki at {where(loki_url)} is unreachable"
                              f" ({reason(exc, timeout)})") from None
    finally:
        session.close()


def readiness(loki_url: str, timeout: float = 3.0) -> tuple[bool, str]:
    """(ready?, one line saying so) from Loki's ``/ready``."""
    try:
        resp = fetch(loki_url, "/ready", timeout=timeout)
    except LokiUnreachable as exc:
        return False, str(exc)
    if resp.status_code == 200:
        return True, f"Loki at {where(loki_url)} is ready"
    return False, (f"Loki at {where(loki_url)} answered {resp.status_code} to /ready"
                   f" ({' '.join(resp.text.split())[:80] or 'no body'})")
