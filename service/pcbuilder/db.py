"""SQLite store for the component catalog.

Request handlers only read: each request gets one connection in ``g`` that is opened
``mode=rw`` (a missing database is an error, not a silently created empty file) with
``query_only`` on. The only writer is :func:`ensure_seeded`, which runs at start-up in
every uWSGI process and must therefore be safe to run concurrently.

Every query goes through :func:`_query`, which adds it to the request's wide event
(``db_queries``, ``db_ms``, ``db_rows``, ``db_start_us``), keeps a ``db.query`` fine event
(written at DEBUG, or when the request keeps its detail: ``request_detail``) and logs a
``db.slow_query`` WARNING when it takes ``DB_SLOW_MS`` or longer.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
from urllib.parse import quote

import click
import structlog
from flask import Flask, current_app, g

from . import request_log
from .catalog import CATEGORIES, COMMON_FIELDS, COMPONENTS, attributes_of

LOGGER = "pcbuilder.db"
log = structlog.get_logger(LOGGER)

#: Milliseconds a connection waits for another process's lock before failing.
BUSY_TIMEOUT_MS = 5000

#: Sort keys accepted by :func:`list_components`, mapped to trusted SQL. ``category`` is
#: the builder's order of categories (``catalog.CATEGORIES``), ``id`` the catalog's order.
SORT_COLUMNS = {
    "id": "id",
    "category": "CASE category " + " ".join(f"WHEN '{c}' THEN {i}" for i, c in enumerate(CATEGORIES))
                + f" ELSE {len(CATEGORIES)} END",
    "name": "name COLLATE NOCASE",
    "brand": "brand COLLATE NOCASE",
    "price": "price",
}

# SQLite integers are signed 64-bit; larger Python ints would raise OverflowError on bind.
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS components (
    id         INTEGER PRIMARY KEY,
    category   TEXT NOT NULL,
    name       TEXT NOT NULL,
    brand      TEXT NOT NULL,
    price      REAL NOT NULL,
    attributes TEXT NOT NULL DEFAULT '{}'  -- JSON object, category-specific
);
CREATE INDEX IF NOT EXISTS components_category ON components (category);
"""

_COLUMNS = "id, category, name, brand, price, attributes"


# --- connections ---------------------------------------------------------------

def _connect(path: str, *, read_only: bool) -> sqlite3.Connection:
    if read_only:
        uri = "file:" + quote(os.path.abspath(path)) + "?mode=rw"
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    else:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if read_only:
        conn.execute("PRAGMA query_only = ON")
    conn.row_factory = sqlite3.Row
    return conn


def get_db() -> sqlite3.Connection:
    """The request's connection, opened on first use."""
    if "db" not in g:
        g.db = _connect(current_app.config["DATABASE"], read_only=True)
    return g.db


def close_db(_exc=None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()


# --- seeding -------------------------------------------------------------------

def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL (persistent), so readers never block the start-up writer.

    Changing the journal mode needs an exclusive lock and SQLite returns SQLITE_BUSY
    for it without waiting when other processes are mid-start, so retry until the busy
    timeout is used up.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorname", "").startswith("SQLITE_BUSY")
            if not busy or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _catalog_rows() -> list[tuple]:
    return [(c["id"], c["category"], c["name"], c["brand"], c["price"],
             json.dumps(attributes_of(c), sort_keys=True)) for c in COMPONENTS]


def ensure_seeded(path: str) -> bool:
    """Create the schema and write the catalog's rows that the database lacks or holds
    differently (a database kept from an older catalog gets its new attributes, which the
    compatibility rules need); rows the catalog does not have are left alone.

    Safe when several processes start at once: WAL is switched on first, then schema
    and rows are written in one ``BEGIN IMMEDIATE`` transaction. That takes the write
    lock up front, so the second process waits (busy timeout) and then sees the rows
    instead of writing them again. Returns True if this call wrote any row.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    conn = _connect(path, read_only=False)
    try:
        _enable_wal(conn)
        conn.execute("BEGIN IMMEDIATE")
        try:
            # executescript() would COMMIT first, so run the statements one by one.
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            stored = {row[0]: tuple(row) for row in conn.execute(f"SELECT {_COLUMNS} FROM components")}
            changed = [row for row in _catalog_rows() if stored.get(row[0]) != row]
            if not changed:
                conn.execute("ROLLBACK")
                return False
            conn.executemany(f"INSERT OR REPLACE INTO components ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                             changed)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()
    log.info("db.seeded", path=path, count=len(changed), catalog=len(COMPONENTS))
    return True


@click.command("init-db")
def init_db_command() -> None:
    """Create and seed the database if it is not there yet."""
    path = current_app.config["DATABASE"]
    seeded = ensure_seeded(path)
    click.echo(f"Seeded {path}." if seeded else f"{path} was already seeded.")


def init_app(app: Flask) -> None:
    app.teardown_appcontext(close_db)
    app.cli.add_command(init_db_command)
    ensure_seeded(app.config["DATABASE"])


# --- queries -------------------------------------------------------------------

def _query(sql: str, params=()) -> list[sqlite3.Row]:
    """Run one read query on the request's connection; count it in the request's wide
    event (step 6), keep it as a ``db.query`` fine event (its statement shape: parameters
    are bound, never in ``sql``), and log it at WARNING when slower than ``DB_SLOW_MS``."""
    stats = request_log.stats()
    detail = stats.detail if stats is not None else None
    if stats is not None and stats.db_start_us is None:
        stats.db_start_us = time.time_ns() // 1000
    started = time.perf_counter()
    try:
        rows = get_db().execute(sql, params).fetchall()
    except Exception as exc:  # the database unavailable, locked...: the query is part of the story
        if detail is not None:
            detail.query(sql, None, (time.perf_counter() - started) * 1000, started, type(exc).__name__)
        raise
    duration_ms = (time.perf_counter() - started) * 1000
    if stats is not None:
        stats.db_queries += 1
        stats.db_ms += duration_ms
        stats.db_rows += len(rows)
    if detail is not None:
        detail.query(sql, len(rows), duration_ms, started)
    slow_ms = current_app.config["DB_SLOW_MS"]
    if duration_ms >= slow_ms:
        log.warning("db.slow_query", sql=_one_line(sql), duration_ms=round(duration_ms, 3),
                    rows=len(rows), threshold_ms=slow_ms)
    return rows


def _one_line(sql: str) -> str:
    return " ".join(sql.split())  # one line in the log, whatever the source formatting


def _retrieved(components):
    """Count components handed to the view in the request's wide event."""
    stats = request_log.stats()
    if stats is not None:
        stats.components += len(components)
    return components


def _to_component(row: sqlite3.Row) -> dict:
    component = {field: row[field] for field in COMMON_FIELDS}
    component.update(json.loads(row["attributes"]))
    return component


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_components(category: str | None = None, search: str | None = None,
                    sort: str = "category", order: str = "asc") -> list[dict]:
    """Components, optionally of one category and/or matching ``search`` in name or brand.

    Equal sort keys keep the catalog's order (``id``). ``sort`` is one of
    :data:`SORT_COLUMNS`, ``order`` is ``asc`` or ``desc``; anything else raises
    ValueError (they become SQL text, so they are never passed through).
    """
    if sort not in SORT_COLUMNS:
        raise ValueError(f"unknown sort key: {sort!r}")
    if order not in ("asc", "desc"):
        raise ValueError(f"unknown sort order: {order!r}")
    where, params = [], []
    if category:
        where.append("category = ?")
        params.append(category)
    if search:
        pattern = "%" + _escape_like(search) + "%"
        where.append("(name LIKE ? ESCAPE '\\' OR brand LIKE ? ESCAPE '\\')")
        params += [pattern, pattern]
    sql = f"SELECT {_COLUMNS} FROM components"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {SORT_COLUMNS[sort]} {order.upper()}, id"
    return _retrieved([_to_component(row) for row in _query(sql, params)])


def get_component(component_id: int) -> dict | None:
    if not _INT64_MIN <= component_id <= _INT64_MAX:
        return None
    rows = _query(f"SELECT {_COLUMNS} FROM components WHERE id = ?", (component_id,))
    return _retrieved([_to_component(rows[0])])[0] if rows else None


def get_components(ids) -> dict[int, dict]:
    """The components with these ids, keyed by id; unknown ids are simply absent."""
    ids = sorted({i for i in ids if _INT64_MIN <= i <= _INT64_MAX})
    if not ids:
        return {}
    placeholders = ", ".join("?" * len(ids))
    rows = _query(f"SELECT {_COLUMNS} FROM components WHERE id IN ({placeholders})", ids)
    return {c["id"]: c for c in _retrieved([_to_component(row) for row in rows])}


def categories() -> list[str]:
    """Categories that have components, in builder order."""
    rows = _query("SELECT DISTINCT category FROM components")
    present = {row["category"] for row in rows}
    known = [c for c in CATEGORIES if c in present]
    return known + sorted(present - set(CATEGORIES))


def count_components() -> int:
    return _query("SELECT COUNT(*) AS n FROM components")[0]["n"]
