"""``LOKI_URL`` in either form users write it: Loki's base URL or its push URL.

Grafana's datasource and ``logcli`` take the base URL (``http://loki:3100``), Promtail
and Alloy the push URL (``http://loki:3100/loki/api/v1/push``). Both are accepted; the
app pushes to :func:`push_url`, ``./stack trace`` queries under :func:`query_base` and
``./stack up`` asks :func:`query_base` ``/ready``. A base URL may carry a path prefix
(Loki behind a reverse proxy): ``https://host/prefix`` pushes to
``https://host/prefix/loki/api/v1/push``.
"""
from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

PUSH_PATH = "/loki/api/v1/push"
FORMS = "give Loki's base URL (http://HOST:3100) or its push URL (http://HOST:3100/loki/api/v1/push)"


def _base_parts(url: str):
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/")
    if path.endswith(PUSH_PATH):
        path = path[: -len(PUSH_PATH)]
    return parts.scheme, parts.netloc, path


def query_base(url: str) -> str:
    """The URL Loki's HTTP API hangs under (``/ready``, ``/loki/api/v1/query_range``)."""
    if not url.strip():
        return ""
    scheme, netloc, path = _base_parts(url)
    return urlunsplit((scheme, netloc, path, "", ""))


def push_url(url: str) -> str:
    """The push endpoint for either form; empty stays empty (shipping off)."""
    base = query_base(url)
    return base + PUSH_PATH if base else ""


def problem(url: str) -> str | None:
    """Why ``url`` is not a usable LOKI_URL (None when it is, or when it is empty)."""
    url = url.strip()
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"is not an http:// or https:// URL; {FORMS}"
    try:
        parts.port  # noqa: B018  (raises on a port that is not a number in range)
    except ValueError:
        return f"has a port that is not a number from 0 to 65535; {FORMS}"
    if not parts.hostname:
        return f"has no host; {FORMS}"
    if parts.query or parts.fragment:
        return f"carries a ?query or #fragment; {FORMS}"
    path = parts.path.rstrip("/")
    if "/loki/api/" in path + "/" and not path.endswith(PUSH_PATH):
        return f"is another Loki API path, not the push path; {FORMS}"
    return None


def redacted(url: str) -> str:
    """``url`` with a password in it replaced by ``***`` (for messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{netloc[-1]}"))
