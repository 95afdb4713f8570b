"""The PC-build compatibility rules: pure functions over component dicts, no I/O.

A build maps category -> component (one per category, see ``catalog.CATEGORIES``).
Builds may be partial: a missing category is reported in ``missing``, never as a problem,
and a rule is only checked when all the parts it compares are present.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from .catalog import CATEGORIES

#: A PSU should be rated for at least this multiple of the estimated draw.
PSU_HEADROOM = 1.25


def _problem(code: str, message: str) -> dict:
    return {"code": code, "message": message}


def part_draw_w(component: Mapping) -> int:
    """Estimated power draw of one part: its TDP (CPU, GPU) or ``power_w`` (the rest)."""
    return int(component.get("tdp_w") or component.get("power_w") or 0)


def estimated_draw_w(build: Mapping[str, Mapping]) -> int:
    """Sum of the estimated draws of the parts in the build (the PSU itself draws 0)."""
    return sum(part_draw_w(part) for part in build.values())


def required_psu_w(draw_w: int) -> int:
    """Minimum PSU rating for a draw: ``ceil(PSU_HEADROOM * draw_w)``.

    The 25 % headroom covers transient spikes (modern GPUs briefly exceed their rated
    power) and keeps the PSU in its efficient load range.
    """
    return math.ceil(draw_w * PSU_HEADROOM)


#: What each rule's code means in a few words, for a picker's option that would break it.
CONFLICT_NOTES = {
    "socket_mismatch": "socket does not match",
    "ram_type_mismatch": "memory type does not match",
    "psu_insufficient": "power supply too small",
    "form_factor_mismatch": "board and case sizes do not match",
    "radiator_too_large": "radiator too large for the case",
}


def problems_of(build: Mapping[str, Mapping]) -> list[dict]:
    """The rules a (possibly partial) build breaks, each applied only when the parts it
    needs are chosen, in this order:

    * ``socket_mismatch``: CPU ``socket`` differs from the motherboard's ``socket``.
    * ``ram_type_mismatch``: RAM ``ram_type`` differs from the motherboard's ``ram_type``.
    * ``psu_insufficient``: PSU ``wattage`` < ``required_psu_w(estimated_draw_w(build))``,
      i.e. the PSU must be rated for at least 1.25 x the sum of the parts' draws
      (CPU/GPU ``tdp_w``, other parts' ``power_w``).
    * ``form_factor_mismatch``: the case's ``form_factors`` do not include the
      motherboard's ``form_factor``.
    * ``radiator_too_large``: the cooler's ``radiator_mm`` (liquid coolers only) is over
      the case's ``max_radiator_mm`` (the longest radiator it can mount anywhere).
    """
    cpu, board, ram = build.get("cpu"), build.get("motherboard"), build.get("ram")
    psu, case, cooler = build.get("psu"), build.get("case"), build.get("cooler")
    problems = []

    if cpu and board and cpu["socket"] != board["socket"]:
        problems.append(_problem(
            "socket_mismatch",
            f"CPU {cpu['name']} uses socket {cpu['socket']}, "
            f"but motherboard {board['name']} has socket {board['socket']}.",
        ))
    if ram and board and ram["ram_type"] != board["ram_type"]:
        problems.append(_problem(
            "ram_type_mismatch",
            f"Memory {ram['name']} is {ram['ram_type']}, "
            f"but motherboard {board['name']} takes {board['ram_type']}.",
        ))
    draw = estimated_draw_w(build)
    required = required_psu_w(draw)
    if psu and psu["wattage"] < required:
        problems.append(_problem(
            "psu_insufficient",
            f"Power supply {psu['name']} is rated {psu['wattage']} W; the parts draw about "
            f"{draw} W, so at least {required} W ({PSU_HEADROOM:g} x) is recommended.",
        ))
    if case and board and board["form_factor"] not in case["form_factors"]:
        problems.append(_problem(
            "form_factor_mismatch",
            f"Case {case['name']} fits {', '.join(case['form_factors'])} boards, "
            f"not {board['form_factor']} ({board['name']}).",
        ))
    radiator = cooler.get("radiator_mm") if cooler else None
    if case and radiator and radiator > case["max_radiator_mm"]:
        problems.append(_problem(
            "radiator_too_large",
            f"Cooler {cooler['name']} has a {radiator} mm radiator, but case {case['name']} "
            f"mounts radiators up to {case['max_radiator_mm']} mm.",
        ))
    return problems


def check_build(build: Mapping[str, Mapping]) -> dict:
    """Total price, problems (see :func:`problems_of`) and missing categories of a
    (possibly partial) build."""
    draw = estimated_draw_w(build)
    return {
        "total_price": round(sum(part["price"] for part in build.values()), 2),
        "estimated_draw_w": draw,
        "required_psu_w": required_psu_w(draw),
        "problems": problems_of(build),
        "missing": [c for c in CATEGORIES if c not in build],
    }


def conflicts(build: Mapping[str, Mapping], options: Iterable[Mapping]) -> dict[str, list[dict]]:
    """For each category, the options that cannot work with the other parts of ``build``.

    An option conflicts when choosing it (in place of its category's current part, if
    any) breaks a rule that the build without that category does not already break: so
    only the parts already picked count, and a problem the rest of the build has anyway
    (a power supply too small for them) does not mark every option. Each entry is
    ``{"id", "codes", "note"}``, ``note`` saying in a few words what would not fit.
    """
    by_category: dict[str, list[Mapping]] = {}
    for option in options:
        by_category.setdefault(option["category"], []).append(option)
    out = {}
    for category, candidates in by_category.items():
        others = {c: part for c, part in build.items() if c != category}
        if not others:
            continue
        already = {p["code"] for p in problems_of(others)}
        marked = []
        for option in candidates:
            new = [p["code"] for p in problems_of({**others, category: option})
                   if p["code"] not in already]
            if new:
                marked.append({"id": option["id"], "codes": new,
                               "note": "; ".join(CONFLICT_NOTES[code] for code in new)})
        if marked:
            out[category] = marked
    return out


def resolve_selection(selection: Mapping[str, int], found: Mapping[int, Mapping]):
    """Turn a {category: id} selection into a build, given the components found by id.

    Returns ``(build, errors)``: ``errors`` lists ``unknown_id`` (no such component) and
    ``wrong_category`` (the component is not of the category it was chosen for) entries,
    each a dict with ``code``, ``category``, ``id`` and ``message``.
    """
    build, errors = {}, []
    for category, component_id in selection.items():
        component = found.get(component_id)
        if component is None:
            errors.append({"code": "unknown_id", "category": category, "id": component_id,
                           "message": f"No component with id {component_id}."})
        elif component["category"] != category:
            errors.append({"code": "wrong_category", "category": category, "id": component_id,
                           "message": f"Component {component_id} ({component['name']}) is a "
                                      f"{component['category']}, not a {category}."})
        else:
            build[category] = component
    return build, errors
