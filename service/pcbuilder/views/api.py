"""JSON API under ``/pc-builder-app/api``. Every error it returns is JSON of one shape,
``{"error", "detail", "request_id"}`` (see :mod:`pcbuilder.errors`), never HTML.

Bad input is answered with 4xx: 400 malformed or wrongly typed body, unknown, repeated or
bad query parameters, duplicate JSON keys; 404 unknown component; 413 body over
``MAX_CONTENT_LENGTH``; 415 not JSON; 422 ids that do not exist or do not match their
category.
"""
from __future__ import annotations

import re

from flask import Blueprint, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import IntegerConverter

from .. import compatibility_rules, db, listing, strict_json
from ..catalog import CATEGORIES
from ..errors import ApiError, shorten

bp = Blueprint("api", __name__)


class IdIntConverter(IntegerConverter):
    """Werkzeug's ``int`` converter limited to what an id can be: 1 to 19 ASCII digits.

    Werkzeug's own matches any Unicode digit and calls ``int()``, which raises ValueError
    past 4,300 digits: a 500 quoting Python's advice to raise the limit. A longer segment
    does not match here, so the fallback route below explains it instead. (Numbers of 19
    digits above the 64-bit range are simply not found by :func:`db.get_component`.)
    """

    regex = r"[0-9]{1,19}"


@bp.get("/components")
def list_components():
    """Components, filtered and sorted as on the /table page (see :mod:`pcbuilder.listing`)."""
    query, problems = listing.parse(request.args)
    if problems:
        names = list(dict.fromkeys(p.parameter[:40] for p in problems))
        raise ApiError(400, "bad query parameter" + ("s" if len(names) > 1 else "") + ": "
                       + ", ".join(names),
                       "; ".join(p.message for p in problems)
                       + f". Parameters (each at most once): category ({', '.join(CATEGORIES)}),"
                       f" q (text, at most {listing.MAX_SEARCH_CHARS} characters),"
                       f" sort ({', '.join(listing.SORT_KEYS)}), order ({', '.join(listing.ORDERS)})")
    components = listing.fetch(query)
    return {"components": components, "count": len(components)}


@bp.get("/components/<int:component_id>")
def get_component(component_id: int):
    component = db.get_component(component_id)
    if component is None:
        raise ApiError(404, "unknown component", f"no component with id {component_id}")
    return component


@bp.get("/components/<component_id>")
def get_component_not_an_id(component_id: str):
    """What ``<int:component_id>`` does not match: negative, huge or not a number."""
    if re.fullmatch(r"-?[0-9]+", component_id):
        raise ApiError(404, "unknown component", f"no component with id {shorten(component_id, 24)}")
    raise ApiError(404, "unknown component",
                   f"{shorten(component_id, 40)!r} is not a component id: ids are whole numbers")


def _read_json_object() -> dict:
    if not request.is_json:
        raise ApiError(415, "unsupported media type",
                       "the request body must be JSON (Content-Type: application/json)")
    data = request.get_data(cache=False)  # raises 413 if Content-Length is over the limit
    # A body without Content-Length (chunked) is silently cut at the limit by Werkzeug;
    # reaching the limit means there may have been more, so refuse rather than parse a prefix.
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(data) >= limit:
        raise RequestEntityTooLarge()
    try:
        body = strict_json.loads(data)
    except strict_json.DuplicateKey as exc:
        raise ApiError(400, "duplicate key in JSON", str(exc)) from None
    except ValueError as exc:
        raise ApiError(400, "malformed JSON", str(exc)) from None
    except RecursionError:  # absurdly deep nesting
        raise ApiError(400, "malformed JSON", "nested too deeply") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object", EXAMPLE)
    return body


EXAMPLE = 'for example {"components": {"cpu": 1, "motherboard": 9}}'


def _parse_selection(body: dict) -> dict[str, int]:
    selection = body.get("components")
    if not isinstance(selection, dict):
        raise ApiError(400, '"components" must be an object mapping category to component id',
                       EXAMPLE)
    unknown = sorted(k for k in selection if k not in CATEGORIES)
    if unknown:
        raise ApiError(400, 'unknown categories in "components": '
                       + ", ".join(shorten(k, 40) for k in unknown[:10]),
                       "valid categories: " + ", ".join(CATEGORIES))
    # bool is a subclass of int in Python, but true/false are not component ids.
    bad = sorted(k for k, v in selection.items()
                 if v is not None and (isinstance(v, bool) or not isinstance(v, int)))
    if bad:
        raise ApiError(400, "component ids must be integers (or null for none)",
                       "not an integer: " + ", ".join(bad))
    return {k: v for k, v in selection.items() if v is not None}


@bp.post("/builds")
def check_build():
    """Check a build: price it and list compatibility problems.

    Body: ``{"components": {"cpu": 1, "motherboard": 9, ...}}`` — an object mapping a
    category (see ``GET /components``) to a component id; ``null`` or an absent key means
    nothing chosen for that category. Nothing is stored.

    Response: ``{"components": [...], "total_price": 0.0, "problems": [{"code", "message"}],
    "missing": [categories], "estimated_draw_w": 0, "required_psu_w": 0, "conflicts":
    {category: [{"id", "codes", "note"}]}}``, ``conflicts`` naming the components that
    cannot work with the ones chosen (what the builder's pickers mark).
    """
    selection = _parse_selection(_read_json_object())
    found = db.get_components(selection.values())
    build, errors = compatibility_rules.resolve_selection(selection, found)
    if errors:
        raise ApiError(422, "some components cannot be used",
                       " ".join(f"{e['category']}: {e['message']}" for e in errors))
    result = compatibility_rules.check_build(build)
    # As the builder page: the chosen parts, then every option, to mark what does not fit.
    return {"components": [build[c] for c in CATEGORIES if c in build], **result,
            "conflicts": compatibility_rules.conflicts(build, db.list_components()) if build else {}}
