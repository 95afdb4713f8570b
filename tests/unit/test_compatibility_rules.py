import pytest

from pcbuilder.catalog import CATEGORIES, COMPONENTS
from pcbuilder.compatibility_rules import (
    CONFLICT_NOTES, check_build, conflicts, estimated_draw_w, required_psu_w, resolve_selection,
)

BY_ID = {c["id"]: c for c in COMPONENTS}


def build(**ids):
    return {category: BY_ID[i] for category, i in ids.items()}


# A fully compatible AM5 build: 7800X3D, B650E-F (ATX, DDR5), DDR5 RAM, RTX 4070 Super,
# 990 Pro, RM850x, Fractal North (ATX), NH-D15.
GOOD = dict(cpu=2, motherboard=9, ram=17, gpu=26, storage=32, psu=40, case=46, cooler=53)


def codes(result):
    return [p["code"] for p in result["problems"]]


def test_compatible_full_build():
    result = check_build(build(**GOOD))
    assert result["problems"] == []
    assert result["missing"] == []
    expected = sum(BY_ID[i]["price"] for i in GOOD.values())
    assert result["total_price"] == pytest.approx(expected) and result["total_price"] == round(expected, 2)


def test_empty_build_reports_everything_missing_and_no_problems():
    result = check_build({})
    assert result == {"total_price": 0, "estimated_draw_w": 0, "required_psu_w": 0,
                      "problems": [], "missing": list(CATEGORIES)}


def test_partial_build_lists_missing_in_builder_order():
    result = check_build(build(cpu=1, gpu=24))
    assert result["problems"] == []
    assert result["missing"] == ["motherboard", "ram", "storage", "psu", "case", "cooler"]
    assert result["total_price"] == round(199.99 + 299.99, 2)


def test_socket_mismatch():
    result = check_build(build(cpu=6, motherboard=9))  # LGA1700 CPU, AM5 board
    assert codes(result) == ["socket_mismatch"]
    assert "LGA1700" in result["problems"][0]["message"]
    assert "AM5" in result["problems"][0]["message"]
    assert codes(check_build(build(cpu=6, motherboard=15))) == []  # both LGA1700


def test_ram_type_mismatch():
    assert codes(check_build(build(motherboard=12, ram=17))) == ["ram_type_mismatch"]  # DDR4 board
    assert codes(check_build(build(motherboard=12, ram=21))) == []  # DDR4 + DDR4
    assert codes(check_build(build(motherboard=16, cpu=6, ram=20))) == []  # LGA1700 DDR4 board


def test_form_factor_mismatch():
    # ATX board in a Mini-ITX case
    result = check_build(build(motherboard=9, case=50))
    assert codes(result) == ["form_factor_mismatch"]
    assert codes(check_build(build(motherboard=14, case=50))) == []  # Mini-ITX in Mini-ITX
    assert codes(check_build(build(motherboard=11, case=51))) == []  # Micro-ATX in Pop Mini Air
    assert codes(check_build(build(motherboard=9, case=51))) == ["form_factor_mismatch"]


def test_psu_rule_is_125_percent_of_estimated_draw():
    assert required_psu_w(400) == 500
    assert required_psu_w(401) == 502  # rounds up
    # 14900K 125 + RTX 4090 450 + Z790-A 65 + RAM 12 + T700 12 + Kraken 15 = 679 W
    parts = build(cpu=8, gpu=29, motherboard=15, ram=18, storage=38, cooler=58)
    assert estimated_draw_w(parts) == 679
    assert required_psu_w(679) == 849

    weak = check_build({**parts, "psu": BY_ID[41]})  # 750 W < 849 W
    assert codes(weak) == ["psu_insufficient"]
    assert "849 W" in weak["problems"][0]["message"]
    assert codes(check_build({**parts, "psu": BY_ID[40]})) == []  # 850 W >= 849 W


def test_psu_boundary_is_inclusive():
    parts = {"cpu": {"name": "x", "price": 1.0, "socket": "AM5", "tdp_w": 400},
             "psu": {"name": "p", "price": 1.0, "wattage": 500}}
    assert check_build(parts)["problems"] == []
    parts["psu"] = {**parts["psu"], "wattage": 499}
    assert codes(check_build(parts)) == ["psu_insufficient"]


def test_several_problems_at_once():
    result = check_build(build(cpu=4, motherboard=14, ram=21, gpu=29, psu=44, case=48))
    assert codes(result) == ["socket_mismatch", "ram_type_mismatch", "psu_insufficient"]
    assert all(set(p) == {"code", "message"} for p in result["problems"])


def test_radiator_too_large_for_the_case():
    # Kraken Elite 360 (360 mm radiator) in the Lian Li A4-H2O (radiators up to 240 mm)
    result = check_build(build(case=52, cooler=58))
    assert codes(result) == ["radiator_too_large"]
    message = result["problems"][0]["message"]
    assert "360 mm" in message and "240 mm" in message and "A4-H2O" in message
    assert codes(check_build(build(case=50, cooler=57))) == ["radiator_too_large"]  # NR200P: 280 mm
    assert codes(check_build(build(case=48, cooler=58))) == ["radiator_too_large"]  # H5 Flow: 280 mm
    assert codes(check_build(build(case=46, cooler=58))) == []  # North: 360 mm
    assert codes(check_build(build(case=52, cooler=53))) == []  # an air cooler has no radiator
    assert codes(check_build(build(cooler=58))) == []  # no case chosen: nothing to compare


def test_radiator_boundary_is_inclusive():
    case = {"name": "c", "price": 1.0, "form_factors": ["ATX"], "max_radiator_mm": 280}
    cooler = {"name": "k", "price": 1.0, "power_w": 5, "radiator_mm": 280}
    assert check_build({"case": case, "cooler": cooler})["problems"] == []
    assert codes(check_build({"case": case, "cooler": {**cooler, "radiator_mm": 281}})) == ["radiator_too_large"]


def test_every_case_says_which_radiators_it_takes_and_every_liquid_cooler_its_radiator():
    for c in COMPONENTS:
        if c["category"] == "case":
            assert isinstance(c["max_radiator_mm"], int) and c["max_radiator_mm"] > 0, c
        if c["category"] == "cooler":
            assert ("radiator_mm" in c) == (c["cooler_type"] == "Liquid"), c


def test_conflicts_mark_the_options_that_clash_with_the_parts_picked():
    marked = conflicts(build(cpu=2), COMPONENTS)  # an AM5 CPU
    assert set(marked) == {"motherboard"}  # only the board is compared with a CPU alone
    boards = {m["id"]: m for m in marked["motherboard"]}
    assert sorted(boards) == [12, 13, 14, 15, 16]  # the AM4 and LGA1700 boards
    assert boards[12]["codes"] == ["socket_mismatch"]
    assert boards[12]["note"] == CONFLICT_NOTES["socket_mismatch"]

    # A Mini-ITX case with a 240 mm limit: ATX/Micro-ATX boards and both 360 mm coolers.
    marked = conflicts(build(case=52), COMPONENTS)
    assert [m["id"] for m in marked["cooler"]] == [57, 58]
    assert all(m["codes"] == ["radiator_too_large"] for m in marked["cooler"])
    assert {m["id"] for m in marked["motherboard"]} == {9, 10, 11, 12, 13, 15, 16}


def test_conflicts_consider_the_other_parts_only_and_each_option_in_place_of_the_pick():
    # CPU and board clash; each picker marks the parts that would not fit the OTHER pick:
    # the AM5 CPU chosen is marked (it does not fit the AM4 board), the AM4 CPUs are not.
    marked = conflicts(build(cpu=2, motherboard=12), COMPONENTS)
    assert {m["id"] for m in marked["cpu"]} == {1, 2, 3, 6, 7, 8}
    assert {m["id"] for m in marked["motherboard"]} == {12, 13, 14, 15, 16}
    assert "ram" in marked and {m["id"] for m in marked["ram"]} == {17, 18, 19, 23}  # DDR5 on DDR4


def test_conflicts_on_power_mark_what_the_chosen_power_supply_cannot_feed():
    # 550 W PSU: needs draw <= 440 W. A 14900K (125 W) leaves room for GPUs up to 315 W.
    marked = conflicts(build(cpu=8, psu=44), COMPONENTS)
    assert {m["id"] for m in marked["gpu"]} == {28, 29, 31}  # 320, 450 and 355 W
    assert marked["gpu"][0]["note"] == "power supply too small"
    # The power supplies too small for the 14900K and a 4090 (575 W drawn, 719 W needed).
    marked = conflicts(build(cpu=8, gpu=29), COMPONENTS)
    assert {m["id"] for m in marked["psu"]} == {39, 44}  # 650 and 550 W


def test_a_problem_the_rest_of_the_build_has_anyway_marks_nothing():
    # The 550 W PSU is already too small for CPU + GPU; every cooler would keep it so, and
    # no cooler is to blame: none is marked for power.
    marked = conflicts(build(cpu=8, gpu=29, psu=44), COMPONENTS)
    assert "cooler" not in marked and "storage" not in marked
    assert conflicts({}, COMPONENTS) == {}


def test_resolve_selection():
    found = {1: BY_ID[1], 9: BY_ID[9]}
    parts, errors = resolve_selection({"cpu": 1, "motherboard": 9}, found)
    assert parts == {"cpu": BY_ID[1], "motherboard": BY_ID[9]} and errors == []

    parts, errors = resolve_selection({"cpu": 9, "gpu": 999}, found)
    assert parts == {}
    assert [(e["code"], e["category"], e["id"]) for e in errors] == [
        ("wrong_category", "cpu", 9), ("unknown_id", "gpu", 999)]
