"""Liveness and readiness probes for NGINX / the orchestrator."""
from __future__ import annotations

import sqlite3

import structlog
from flask import Blueprint

from .. import db

bp = Blueprint("health", __name__)
log = structlog.get_logger("pcbuilder.health")


@bp.get("/healthz")
def healthz():
    """The process answers; deliberately does not touch the database."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    """Ready when the database opens and holds a non-empty catalog."""
    try:
        count = db.count_components()
    except sqlite3.Error as exc:
        error = f"{type(exc).__name__}: {exc}"
        log.warning("readyz.failed", error=error)
        return {"status": "unavailable", "error": error}, 503
    if count == 0:
        return {"status": "unavailable", "error": "component catalog is empty"}, 503
    return {"status": "ready", "components": count}
