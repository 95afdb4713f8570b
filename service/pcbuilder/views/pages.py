"""HTML pages: landing page, component table and the builder form."""
from __future__ import annotations

from flask import Blueprint, redirect, request, url_for

from .. import compatibility_rules, db, listing, request_log
from ..catalog import CATEGORIES, COMPONENTS, attributes_of
from ..errors import shorten

bp = Blueprint("pages", __name__)

CATEGORY_LABELS = {
    "cpu": "CPU", "motherboard": "Motherboard", "ram": "Memory", "gpu": "Graphics card",
    "storage": "Storage", "psu": "Power supply", "case": "Case", "cooler": "CPU cooler",
}
_FORMATS = {"tdp_w": "{} W TDP", "power_w": "{} W", "wattage": "{} W", "capacity_gb": "{} GB",
            "memory_gb": "{} GB VRAM", "speed_mts": "{} MT/s", "radiator_mm": "{} mm radiator",
            "max_radiator_mm": "radiators up to {} mm"}
#: The table's columns that sort it when their header is clicked: sort key -> header.
SORTABLE_COLUMNS = {"category": "Category", "name": "Name", "brand": "Brand", "price": "Price"}


@bp.app_template_filter("specs")
def specs(component: dict) -> str:
    """Short human summary of a component's attributes, e.g. ``AM5 · 105 W TDP``."""
    parts = []
    for key, value in attributes_of(component).items():
        if isinstance(value, list):
            value = ", ".join(value)
        parts.append(_FORMATS.get(key, "{}").format(value))
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
    return request_log.render("main.html", categories=CATEGORIES, parts=len(COMPONENTS))


@bp.get("/table")
def table():
    # Same parameters and meaning as GET /api/components; where the API answers 400, the
    # page says what it could not use and renders with the defaults.
    query, problems = listing.parse(request.args)
    components = listing.fetch(query)
    return request_log.render("table.html", components=components, categories=CATEGORIES,
                           category=query.category or "", sort=query.sort, order=query.order,
                           q=query.q, problems=[p.message for p in problems if not p.unknown_name],
                           columns=_sort_links(query))


def _sort_links(query: listing.Listing) -> list[dict]:
    """Each sortable header: where clicking it goes (ascending first, then flipping the
    order of the column already sorted on) and its ``aria-sort`` state."""
    kept = {k: v for k, v in (("category", query.category), ("q", query.q)) if v}
    columns = []
    for key, label in SORTABLE_COLUMNS.items():
        current = query.sort == key
        order = "desc" if current and query.order == "asc" else "asc"
        columns.append({"key": key, "label": label,
                        "href": url_for("pages.table", **kept, sort=key, order=order),
                        "aria_sort": ("ascending" if query.order == "asc" else "descending")
                        if current else None})
    return columns


def _read_selection(args) -> tuple[dict[str, int], dict[str, str]]:
    """The ``{category: id}`` the form asks for, and an error per category it got wrong."""
    selection, errors = {}, {}
    for category in CATEGORIES:
        values = [v.strip() for v in args.getlist(category)]
        if len(values) > 1:
            shown = ", ".join(shorten(v, 20) or "none" for v in values[:5])
            errors[category] = f"chosen {len(values)} times ({shown}); choose one."
        elif values and values[0]:
            raw = values[0]
            if raw.isascii() and raw.isdigit() and len(raw) <= 18:
                selection[category] = int(raw)
            else:
                errors[category] = f"{shorten(raw, 40)!r} is not a component id."
    return selection, errors


@bp.get("/builder")
def builder():
    # GET so a build is a shareable URL: /builder?cpu=1&motherboard=9
    selection, errors = _read_selection(request.args)
    components = db.list_components()
    options = {c: [] for c in CATEGORIES}
    for component in components:
        options.setdefault(component["category"], []).append(component)

    build = {}
    if selection:
        build, unusable = compatibility_rules.resolve_selection(selection, db.get_components(selection.values()))
        errors.update((e["category"], e["message"]) for e in unusable)
    # A verdict on part of what was asked for would mislead: none until the input is right.
    result = None
    if selection and not errors:
        result = compatibility_rules.check_build(build)
        result["build"] = build
    # The pickers mark what cannot work with the parts that could be read.
    notes = {(category, entry["id"]): entry["note"] for category, entries
             in compatibility_rules.conflicts(build, components).items()
             for entry in entries}
    form_errors = [f"{CATEGORY_LABELS[c]}: {errors[c]}" for c in CATEGORIES if c in errors]
    return request_log.render("builder.html", categories=CATEGORIES, options=options, notes=notes,
                           selection=selection, form_errors=form_errors, result=result)
