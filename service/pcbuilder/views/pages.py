"""HTML pages: landing page, component table and the builder form."""
from __future__ import annotations

import structlog
from flask import Blueprint, redirect, render_template, request, url_for

from .. import compat, db
from ..catalog import CATEGORIES, attributes_of
from ..logging_config import debug_enabled

bp = Blueprint("pages", __name__)
log = structlog.get_logger("pcbuilder.pages")

CATEGORY_LABELS = {
    "cpu": "CPU", "motherboard": "Motherboard", "ram": "Memory", "gpu": "Graphics card",
    "storage": "Storage", "psu": "Power supply", "case": "Case", "cooler": "CPU cooler",
}
_UNITS = {"tdp_w": " W TDP", "power_w": " W", "wattage": " W", "capacity_gb": " GB",
          "memory_gb": " GB VRAM", "speed_mts": " MT/s"}


@bp.app_template_filter("specs")
def specs(component: dict) -> str:
    """Short human summary of a component's attributes, e.g. ``AM5 · 105 W TDP``."""
    parts = []
    for key, value in attributes_of(component).items():
        if isinstance(value, list):
            value = ", ".join(value)
        parts.append(f"{value}{_UNITS.get(key, '')}")
    return " · ".join(parts)


@bp.app_template_filter("usd")
def usd(amount: float) -> str:
    return f"${amount:,.2f}"


@bp.app_context_processor
def _labels():
    return {"category_labels": CATEGORY_LABELS}


@bp.get("/")
def index():
    return redirect(url_for("pages.main"))


@bp.get("/main")
def main():
    return render_template("main.html", categories=CATEGORIES)


@bp.get("/table")
def table():
    # Unknown filter values fall back to the defaults: a page should render, not 400.
    category = request.args.get("category", "")
    if category not in CATEGORIES:
        category = ""
    sort = request.args.get("sort", "id")
    if sort not in db.SORT_COLUMNS:
        sort = "id"
    order = request.args.get("order", "asc")
    if order not in ("asc", "desc"):
        order = "asc"
    q = request.args.get("q", "").strip()[:100]

    components = db.list_components(category=category or None, search=q or None,
                                    sort=sort, order=order)
    if debug_enabled("pcbuilder.pages"):
        log.debug("components.retrieved", count=len(components), category=category or None,
                  sort=sort, order=order, searched=bool(q))
    return render_template("table.html", components=components, categories=CATEGORIES,
                           category=category, sort=sort, order=order, q=q)


@bp.get("/builder")
def builder():
    # GET so a build is a shareable URL: /builder?cpu=1&motherboard=9
    selection, form_errors = {}, []
    for category in CATEGORIES:
        raw = request.args.get(category, "").strip()
        if not raw:
            continue
        if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
            form_errors.append(f"{CATEGORY_LABELS[category]}: {raw!r} is not a component id.")
            continue
        selection[category] = int(raw)

    options = {c: [] for c in CATEGORIES}
    for component in db.list_components():
        options.setdefault(component["category"], []).append(component)

    result = None
    if selection:
        found = db.get_components(selection.values())
        build, errors = compat.resolve_selection(selection, found)
        form_errors += [e["message"] for e in errors]
        result = compat.check_build(build)
        result["build"] = build
    return render_template("builder.html", categories=CATEGORIES, options=options,
                           selection=selection, form_errors=form_errors, result=result)
