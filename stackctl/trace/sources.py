"""Collecting one request's lines: from Loki's query API, or from the local log files.

From Loki when ``LOKI_URL`` is set; when Loki is unreachable, from the files under
``LOG_DIR`` (which hold every layer's lines on this host), after a warning. An id is
what a person pastes: surrounding spaces and quotes are trimmed, a unique prefix of at
least 8 characters is accepted, and an id that exists only in another case is named
(ids are case-sensitive: NGINX accepts A-Z and a-z).
"""
from __future__ import annotations

import time
from pathlib import Path

from pcbuilder.request_ids import is_valid as valid_request_id  # the format NGINX accepts
from pcbuilder.urls import API_PREFIX, URL_PREFIX

from .. import logfiles
from .lines import number

BEACON_PATH = API_PREFIX + "/timing"
#: What ``--last`` skips: static files, the timing beacon and health probes (./stack polls readyz).
NOT_REQUESTS = (URL_PREFIX + "/static/", BEACON_PATH, URL_PREFIX + "/readyz", URL_PREFIX + "/healthz")
#: Characters a pasted id comes wrapped in.
WRAPPING = " \t\r\n\"'`"


class TraceError(Exception):
    """Printed as ``stack: <message>`` with a non-zero exit code."""


def regex_literal(text: str) -> str:
    """An id or a path as a LogQL (RE2) regular expression matching it literally: of the
    characters they hold (A-Z a-z 0-9 . _ - /) only the dot is special."""
    return text.replace(".", r"\.")


def clean_id(raw: str) -> str:
    """The id as pasted, without surrounding spaces and quotes."""
    return raw.strip(WRAPPING)


def is_page_or_api(nginx: dict) -> bool:
    """A page or API request (not a static file, the beacon, a health probe or a path outside the app)."""
    path = str(nginx.get("uri") or "").split("?", 1)[0].split("#", 1)[0]
    if not path.startswith(URL_PREFIX + "/"):
        return False
    return not any(path == p or (p.endswith("/") and path.startswith(p)) for p in NOT_REQUESTS)


def recent_requests(records: list[dict], count: int) -> list[dict]:
    """The ``count`` most recent page or API requests NGINX logged, newest last."""
    found = [r for r in records if r.get("event") == "nginx.access" and valid_request_id(r.get("request_id"))
             and number(r.get("msec")) is not None and is_page_or_api(r)]
    found.sort(key=lambda r: number(r["msec"]))
    return found[-count:]


# --- where the lines are ----------------------------------------------------------------

class Files:
    """The stack's JSON log files under LOG_DIR."""

    def __init__(self, log_dir: Path):
        if not log_dir.is_dir():
            raise TraceError(f"LOG_DIR={log_dir} does not exist: no log files to trace from")
        self.log_dir = log_dir
        self.where = str(log_dir)

    def records(self, request_id: str) -> list[dict]:
        """Every line containing ``request_id`` (so also those of ids it is a prefix of)."""
        return logfiles.records_with(self.log_dir, request_id)

    def records_ignoring_case(self, request_id: str) -> list[dict]:
        return logfiles.records_with(self.log_dir, request_id, ignore_case=True)

    def recent(self, count: int) -> list[dict]:
        """The last ``count`` page or API requests, from the access log's tail (then all of it)."""
        access = self.log_dir / "nginx" / "access.log"
        if not access.exists():
            return []
        found: list[dict] = []
        for max_bytes in (256 * 1024, None):
            lines = logfiles.last_lines(access, max_bytes)
            found = recent_requests([r for r in map(logfiles.parse, lines) if r is not None], count)
            if len(found) >= count:
                break
        return found


class Loki:
    """Loki's query API (``query_range``) over the last ``since_s`` seconds."""

    def __init__(self, loki_url: str, since_s: float):
        from .. import loki  # requests: loaded only when Loki is asked

        self.loki, self.url, self.since_s = loki, loki_url, since_s
        self.where = f"Loki ({loki.where(loki_url)})"

    def query(self, logql: str, limit: int, direction: str, timeout: float = 10.0) -> list[dict]:
        now_ns = time.time_ns()
        params = {"query": logql, "start": str(now_ns - int(self.since_s * 1e9)), "end": str(now_ns),
                  "limit": str(limit), "direction": direction}
        resp = self.loki.fetch(self.url, "/loki/api/v1/query_range", params, timeout)
        where = self.loki.where(self.url)
        if resp.status_code != 200:
            raise self.loki.LokiError(f"Loki at {where} answered {resp.status_code} to the query:"
                                      f" {' '.join(resp.text.split())[:200]}")
        try:
            result = resp.json()["data"]["result"]
        except (ValueError, KeyError, TypeError):
            raise self.loki.LokiError(f"Loki at {where} answered something that is not a query result") from None
        records = []
        for stream in result or []:
            labels = stream.get("stream") or {}
            for ts_ns, line, *_ in stream.get("values") or []:
                record = logfiles.parse(line)
                if record is None:
                    continue
                # Labels and structured metadata fill in what the line itself lacks.
                for key in ("layer", "instance", "request_id"):
                    if key in labels:
                        record.setdefault(key, labels[key])
                record.setdefault("_loki_ts_ns", ts_ns)
                records.append(record)
        return records

    def records(self, request_id: str) -> list[dict]:
        found = self.query(f'{{service_name="pc-builder"}} | request_id="{request_id}"', 5000, "forward")
        if found:
            return found
        return self.query(f'{{service_name="pc-builder"}} | request_id=~`{regex_literal(request_id)}.*`',
                          5000, "forward")

    def records_ignoring_case(self, request_id: str) -> list[dict]:
        return self.query(f'{{service_name="pc-builder", layer="nginx"}} '
                          f'| request_id=~`(?i){regex_literal(request_id)}.*`', 50, "backward")

    def recent(self, count: int) -> list[dict]:
        skip = "|".join(regex_literal(p) + (".*" if p.endswith("/") else "([?#].*)?") for p in NOT_REQUESTS)
        logql = (f'{{service_name="pc-builder", layer="nginx"}} | json uri '
                 f'| uri=~`{regex_literal(URL_PREFIX)}/.*` | uri!~`{skip}`')
        return recent_requests(self.query(logql, max(200, 2 * count), "backward"), count)


# --- one request -------------------------------------------------------------------------

def resolve(source, raw_id: str) -> tuple[str, list[dict]]:
    """(the request id, its records) for an id as pasted: whole, or a unique prefix."""
    wanted = clean_id(raw_id)
    if not valid_request_id(wanted):
        raise TraceError(f"{raw_id!r} is not a request id: 8-128 characters of A-Z a-z 0-9 . _ -")
    records = source.records(wanted)
    ids = sorted({r.get("request_id") for r in records
                  if isinstance(r.get("request_id"), str) and r["request_id"].startswith(wanted)})
    if wanted in ids:
        ids = [wanted]
    if len(ids) > 1:
        shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
        raise TraceError(f"{wanted!r} is the start of {len(ids)} request ids ({shown}) in {source.where}:"
                         " give more of it")
    if not ids:
        other = sorted({r.get("request_id") for r in source.records_ignoring_case(wanted)
                        if isinstance(r.get("request_id"), str)
                        and r["request_id"].lower().startswith(wanted.lower())})
        if other:
            raise TraceError(f"no request id {wanted!r} in {source.where}, but {other[0]!r} differs from it "
                             "only in case (request ids are case-sensitive)")
        raise TraceError(f"no log line carries request id {wanted!r} in {source.where}")
    return ids[0], [r for r in records if r.get("request_id") == ids[0]]


def open_source(*, log_dir: Path, loki_url: str, since_s: float, warn, action):
    """``action(source)`` on Loki when ``loki_url`` is set, else (or when Loki is unreachable,
    after ``warn(<why>)``) on the local files."""
    if loki_url:
        from .. import loki

        try:
            return action(Loki(loki_url, since_s))
        except loki.LokiUnreachable as exc:
            if warn is not None:
                warn(f"{exc}; reading the local files in {log_dir} instead")
        except loki.LokiError as exc:
            raise TraceError(f"{exc}; ./stack trace --files reads the local files in {log_dir} instead") from None
    return action(Files(log_dir))


def collect(request_id: str | None, *, log_dir: Path, loki_url: str = "", since_s: float = 86400,
            warn=None) -> tuple[str, list[dict], str]:
    """(request id, its records, where they came from). ``None`` means the last page or API request."""
    def action(source):
        if request_id is not None:
            return (*resolve(source, request_id), source.where)
        last = source.recent(1)
        if not last:
            raise TraceError(f"no page or API request in the NGINX access log ({source.where}) to trace")
        return (*resolve(source, last[-1]["request_id"]), source.where)

    return open_source(log_dir=log_dir, loki_url=loki_url, since_s=since_s, warn=warn, action=action)


def recent(count: int, *, log_dir: Path, loki_url: str = "", since_s: float = 86400,
           warn=None) -> tuple[list[dict], str]:
    """(the NGINX lines of the last ``count`` page or API requests, newest last; where from)."""
    return open_source(log_dir=log_dir, loki_url=loki_url, since_s=since_s, warn=warn,
                       action=lambda source: (source.recent(count), source.where))
