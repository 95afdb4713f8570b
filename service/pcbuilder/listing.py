"""Which components a listing shows: the query parameters ``/table`` and
``GET /api/components`` share, read by one parser and fetched by one function.

========== =====================================================================
category   one of ``catalog.CATEGORIES``; empty or absent: every category
q          text searched in name or brand, case-insensitive, trimmed, at most
           100 characters; empty or absent: no search
sort       ``category`` (the builder's order of categories, the default), ``name``,
           ``brand``, ``price`` or ``id`` (the catalog's order); ties keep the catalog's order
order      ``asc`` (default) or ``desc``
========== =====================================================================

Each parameter may be given once. The parser reports every problem (unknown or repeated
parameter, bad value) and still returns a usable query, each bad value replaced by its
default and a repeated one taken from its first occurrence: the API answers 400 naming
the problems, the page shows them and renders with the defaults.

No name or brand contains a control character, so a search for one matches nothing. It
is decided here because SQLite's ``LIKE`` stops reading a pattern at a NUL: searching for
``"\\x00"`` would otherwise match every component.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from werkzeug.datastructures import MultiDict

from . import db, request_detail
from .catalog import CATEGORIES

LOGGER = "pcbuilder.listing"

PARAMETERS = ("category", "q", "sort", "order")
SORT_KEYS = tuple(db.SORT_COLUMNS)
ORDERS = ("asc", "desc")
MAX_SEARCH_CHARS = 100


@dataclass(frozen=True)
class Listing:
    category: str | None = None
    q: str = ""
    sort: str = "category"
    order: str = "asc"


@dataclass(frozen=True)
class Problem:
    parameter: str
    message: str
    unknown_name: bool = False  # the parameter itself is not one of PARAMETERS


def _one_of(name: str, value: str, allowed) -> Problem | None:
    if value in allowed:
        return None
    return Problem(name, f"{name} must be one of {', '.join(allowed)}, not {value[:40]!r}")


def parse(args: MultiDict) -> tuple[Listing, list[Problem]]:
    """The listing ``args`` ask for, and what is wrong with them (empty when nothing)."""
    problems = [Problem(name, f"unknown parameter {name[:40]!r}", unknown_name=True)
                for name in args if name not in PARAMETERS]
    given = {}
    for name in PARAMETERS:
        values = args.getlist(name)
        if len(values) > 1:
            problems.append(Problem(name, f"{name} is given {len(values)} times; give it once"))
        if values:
            given[name] = values[0]

    fields = {}
    category = given.get("category", "")
    if category:
        problem = _one_of("category", category, CATEGORIES)
        problems += [problem] if problem else []
        fields["category"] = None if problem else category
    q = given.get("q", "").strip()
    if len(q) > MAX_SEARCH_CHARS:
        problems.append(Problem("q", f"q is {len(q)} characters long; at most "
                                     f"{MAX_SEARCH_CHARS} are searched"))
    fields["q"] = q[:MAX_SEARCH_CHARS]
    for name, allowed in (("sort", SORT_KEYS), ("order", ORDERS)):
        if name in given:
            problem = _one_of(name, given[name], allowed)
            problems += [problem] if problem else []
            if not problem:
                fields[name] = given[name]
    listing = Listing(**fields)
    detail = request_detail.current()
    if detail is not None:  # rendered only if kept (both are immutable from here on)
        detail.add("listing.parsed", LOGGER, (_decision, listing, tuple(problems)))
    return listing, problems


def _decision(listing: Listing, problems: tuple[Problem, ...]) -> dict:
    """What the parser decided, without what the client typed: whether there is a search
    (not its text), the known parameters it could not use, how many unknown ones."""
    return {"category": listing.category, "sort": listing.sort, "order": listing.order,
            "searched": bool(listing.q), "problems": len(problems),
            "bad": sorted({p.parameter for p in problems if not p.unknown_name}),
            "unknown": sum(p.unknown_name for p in problems)}


def _retrieved(listing: Listing, count: int) -> dict:
    return {"count": count, "category": listing.category, "sort": listing.sort, "order": listing.order,
            "searched": bool(listing.q)}


def _matches_nothing(q: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in q)


def fetch(listing: Listing) -> list[dict]:
    """The components of ``listing``, in its order."""
    if _matches_nothing(listing.q):
        components = []
    else:
        components = db.list_components(category=listing.category, search=listing.q or None,
                                        sort=listing.sort, order=listing.order)
    detail = request_detail.current()
    if detail is not None:  # the count is also in the request's wide event
        detail.add("components.retrieved", LOGGER, (_retrieved, listing, len(components)))
    return components
