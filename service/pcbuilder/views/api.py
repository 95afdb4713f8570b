"""JSON API under ``/pc-builder-app/api``. Every error it returns is JSON, never HTML.

Bad input is answered with 4xx: 400 malformed or wrongly typed body, 404 unknown
component, 413 body over ``MAX_CONTENT_LENGTH``, 415 not JSON, 422 ids that do not
exist or do not match their category.
"""
from __future__ import annotations

import json

from flask import Blueprint, abort, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from .. import URL_PREFIX, compat, db
from ..catalog import CATEGORIES

bp = Blueprint("api", __name__)
API_PREFIX = URL_PREFIX + "/api"


class ApiError(Exception):
    """A client error with a JSON body: ``{"error": message, **details}``."""

    def __init__(self, status: int, message: str, **details):
        super().__init__(message)
        self.status, self.message, self.details = status, message, details


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    return jsonify(error=exc.message, **exc.details), exc.status


def is_api_request() -> bool:
    """Whether the current request is under the API prefix (its errors are JSON)."""
    return request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/")


@bp.app_errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    # App-wide so routing errors (404/405 before any blueprint is chosen) under /api are
    # JSON too; everything else keeps Flask's default response.
    if not is_api_request():
        return exc
    response = exc.get_response()  # keeps headers such as Allow on a 405
    response.set_data(json.dumps({"error": exc.description, "status": exc.code}))
    response.content_type = "application/json"
    return response


@bp.get("/components")
def list_components():
    category = request.args.get("category")
    if category is not None and category not in CATEGORIES:
        raise ApiError(400, f"unknown category {category!r}", valid_categories=list(CATEGORIES))
    components = db.list_components(category=category)
    return {"components": components, "count": len(components)}


@bp.get("/components/<int:component_id>")
def get_component(component_id: int):
    component = db.get_component(component_id)
    if component is None:
        abort(404, description=f"no component with id {component_id}")
    return component


def _read_json_object() -> dict:
    if not request.is_json:
        raise ApiError(415, "request body must be JSON (Content-Type: application/json)")
    data = request.get_data(cache=False)  # raises 413 if Content-Length is over the limit
    # A body without Content-Length (chunked) is silently cut at the limit by Werkzeug;
    # reaching the limit means there may have been more, so refuse rather than parse a prefix.
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(data) >= limit:
        raise RequestEntityTooLarge()
    try:
        body = json.loads(data)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise ApiError(400, f"malformed JSON: {exc}" if isinstance(exc, ValueError)
                       else "malformed JSON: nested too deeply") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    return body


def _parse_selection(body: dict) -> dict[str, int]:
    selection = body.get("components")
    if not isinstance(selection, dict):
        raise ApiError(400, '"components" must be an object mapping category to component id',
                       example={"components": {"cpu": 1, "motherboard": 9}})
    unknown = sorted(k for k in selection if k not in CATEGORIES)
    if unknown:
        raise ApiError(400, "unknown categories in \"components\"",
                       unknown_categories=unknown, valid_categories=list(CATEGORIES))
    # bool is a subclass of int in Python, but true/false are not component ids.
    bad = sorted(k for k, v in selection.items()
                 if v is not None and (isinstance(v, bool) or not isinstance(v, int)))
    if bad:
        raise ApiError(400, "component ids must be integers (or null for none)",
                       invalid_categories=bad)
    return {k: v for k, v in selection.items() if v is not None}


@bp.post("/builds")
def check_build():
    """Check a build: price it and list compatibility problems.

    Body: ``{"components": {"cpu": 1, "motherboard": 9, ...}}`` — an object mapping a
    category (see ``GET /components``) to a component id; ``null`` or an absent key means
    nothing chosen for that category. Nothing is stored.

    Response: ``{"components": [...], "total_price": 0.0, "problems": [{"code", "message"}],
    "missing": [categories], "estimated_draw_w": 0, "required_psu_w": 0}``.
    """
    selection = _parse_selection(_read_json_object())
    found = db.get_components(selection.values())
    build, errors = compat.resolve_selection(selection, found)
    if errors:
        raise ApiError(422, "some components cannot be used", details=errors,
                       unknown_ids=[e["id"] for e in errors if e["code"] == "unknown_id"])
    result = compat.check_build(build)
    return {"components": [build[c] for c in CATEGORIES if c in build], **result}
