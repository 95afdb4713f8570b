import pytest

from pcbuilder.catalog import CATEGORIES, COMPONENTS
from pcbuilder.compat import (
    check_build, estimated_draw_w, required_psu_w, resolve_selection,
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


def test_resolve_selection():
    found = {1: BY_ID[1], 9: BY_ID[9]}
    parts, errors = resolve_selection({"cpu": 1, "motherboard": 9}, found)
    assert parts == {"cpu": BY_ID[1], "motherboard": BY_ID[9]} and errors == []

    parts, errors = resolve_selection({"cpu": 9, "gpu": 999}, found)
    assert parts == {}
    assert [(e["code"], e["category"], e["id"]) for e in errors] == [
        ("wrong_category", "cpu", 9), ("unknown_id", "gpu", 999)]
