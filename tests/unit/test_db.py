import json
import multiprocessing
import sqlite3
import time
from collections import Counter

import pytest

from pcbuilder import db
from pcbuilder.catalog import CATEGORIES, COMPONENTS


def test_catalog_has_58_well_formed_components():
    assert len(COMPONENTS) == 58
    assert [c["id"] for c in COMPONENTS] == list(range(1, 59))
    assert set(Counter(c["category"] for c in COMPONENTS)) == set(CATEGORIES)
    required = {
        "cpu": {"socket", "tdp_w"}, "motherboard": {"socket", "ram_type", "form_factor"},
        "ram": {"ram_type", "capacity_gb"}, "gpu": {"tdp_w"}, "storage": {"power_w"},
        "psu": {"wattage"}, "case": {"form_factors"}, "cooler": {"power_w"},
    }
    for c in COMPONENTS:
        assert required[c["category"]] <= c.keys(), c
        assert isinstance(c["price"], float) and c["price"] > 0
        assert round(c["price"], 2) == c["price"]


def test_seeded_on_start(app):
    conn = sqlite3.connect(app.config["DATABASE"])
    assert conn.execute("SELECT COUNT(*) FROM components").fetchone()[0] == 58
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_seeding_twice_is_a_no_op(tmp_path):
    path = str(tmp_path / "nested" / "dir" / "db.sqlite3")  # parent dirs get created
    assert db.ensure_seeded(path) is True
    assert db.ensure_seeded(path) is False
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM components").fetchone()[0] == 58


def _seed_at_once(path, barrier, results):
    barrier.wait()
    try:
        results.put(("ok", db.ensure_seeded(path)))
    except BaseException as exc:  # report, don't just die
        results.put(("error", repr(exc)))


def test_concurrent_seeding_from_several_processes(tmp_path):
    """Like uWSGI workers starting together: one seeds, the rest see the rows."""
    workers = 8
    path = str(tmp_path / "fresh" / "pcbuilder.sqlite3")
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_seed_at_once, args=(path, barrier, results))
             for _ in range(workers)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert [o for o in outcomes if o[0] == "error"] == []
    assert sorted(o[1] for o in outcomes) == [False] * (workers - 1) + [True]
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM components").fetchone()[0] == 58
    assert conn.execute("SELECT COUNT(DISTINCT id) FROM components").fetchone()[0] == 58


def test_list_components_filters_sorts_and_searches(app):
    with app.test_request_context():
        assert len(db.list_components()) == 58
        cpus = db.list_components(category="cpu")
        assert len(cpus) == 8 and {c["category"] for c in cpus} == {"cpu"}
        prices = [c["price"] for c in db.list_components(sort="price")]
        assert prices == sorted(prices)
        names = [c["name"].lower() for c in db.list_components(sort="name", order="desc")]
        assert names == sorted(names, reverse=True)
        assert {c["brand"] for c in db.list_components(search="corsair")} == {"Corsair"}
        assert [c["id"] for c in db.list_components(category="gpu", search="4090")] == [29]
        # LIKE wildcards in the search text are literal
        assert db.list_components(search="%") == []
        assert db.list_components(search="_") == []
        with pytest.raises(ValueError):
            db.list_components(sort="price; DROP TABLE components")
        with pytest.raises(ValueError):
            db.list_components(order="sideways")


def test_sort_by_category_brand_and_id(app):
    rank = {c: i for i, c in enumerate(CATEGORIES)}
    with app.test_request_context():
        by_category = db.list_components(sort="category")
        assert [rank[c["category"]] for c in by_category] == sorted(rank[c["category"]] for c in by_category)
        # ties keep the catalog's order; descending reverses the categories, not the ties
        assert [c["id"] for c in by_category if c["category"] == "gpu"] == list(range(24, 32))
        desc = db.list_components(sort="category", order="desc")
        assert [c["category"] for c in desc][:2] == ["cooler", "cooler"] and desc[0]["id"] == 53
        assert desc[-1]["category"] == "cpu"
        brands = [c["brand"].lower() for c in db.list_components(sort="brand")]
        assert brands == sorted(brands)
        assert [c["id"] for c in db.list_components(sort="id", order="desc")] == list(range(58, 0, -1))
        assert [c["id"] for c in db.list_components()] == list(range(1, 59))  # the default: category


def test_a_database_from_an_older_catalog_gets_the_catalogs_rows(tmp_path):
    """A kept database (a compose volume) whose rows lack attributes the rules now read:
    start-up rewrites the rows that differ and leaves rows the catalog does not have."""
    path = str(tmp_path / "db.sqlite3")
    assert db.ensure_seeded(path) is True
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("""UPDATE components SET attributes = '{"form_factors": ["Mini-ITX"]}' WHERE id = 52""")
    conn.execute("UPDATE components SET price = 1.0 WHERE id = 1")
    conn.execute("INSERT INTO components VALUES (900, 'cpu', 'Local part', 'Shop', 9.0, '{}')")
    conn.close()
    assert db.ensure_seeded(path) is True
    assert db.ensure_seeded(path) is False
    conn = sqlite3.connect(path)
    rows = dict(conn.execute("SELECT id, attributes FROM components WHERE id IN (52, 900)").fetchall())
    assert json.loads(rows[52])["max_radiator_mm"] == 240 and rows[900] == "{}"
    assert conn.execute("SELECT price FROM components WHERE id = 1").fetchone()[0] == 199.99
    assert conn.execute("SELECT COUNT(*) FROM components").fetchone()[0] == 59


def test_component_lookups(app):
    with app.test_request_context():
        cpu = db.get_component(1)
        assert cpu["name"] == "Ryzen 5 7600X" and cpu["socket"] == "AM5"
        assert db.get_component(999) is None
        assert db.get_component(10**30) is None  # beyond SQLite's int64, no OverflowError
        case = db.get_component(50)
        assert case["form_factors"] == ["Mini-ITX"]
        found = db.get_components([1, 9, 999, 1])
        assert set(found) == {1, 9}
        assert db.get_components([]) == {}
        assert db.categories() == list(CATEGORIES)
        assert db.count_components() == 58


def test_request_connection_is_read_only(app):
    with app.test_request_context():
        with pytest.raises(sqlite3.OperationalError):
            db.get_db().execute("DELETE FROM components")


def test_connection_closed_after_request(app):
    with app.test_request_context():
        conn = db.get_db()
        assert db.get_db() is conn
    with pytest.raises(sqlite3.ProgrammingError):
        conn.execute("SELECT 1")


def test_queries_are_summed_up_in_the_wide_event(client, log_lines):
    before_us = time.time_ns() // 1000
    response = client.get("/pc-builder-app/table")
    rid = response.headers["X-Request-ID"]
    assert not log_lines("db.query")  # DEBUG only
    (line,) = [r for r in log_lines("request.finished") if r["request_id"] == rid]
    assert line["db_queries"] == 1 and line["db_rows"] == 58 and line["components"] == 58
    assert 0 <= line["db_ms"] <= line["duration_ms"]
    assert before_us <= line["start_us"] <= line["db_start_us"]
    assert line["db_start_us"] <= line["start_us"] + line["duration_ms"] * 1000

    response = client.get("/pc-builder-app/healthz")
    line = log_lines("request.finished")[-1]
    assert line["db_queries"] == 0 and line["db_start_us"] is None and line["components"] == 0


@pytest.fixture
def debug_client(app):
    from pcbuilder.logging_config import configure_logging

    configure_logging("test", app.config["APP_LOG_FILE"], "DEBUG")
    return app.test_client()


def test_every_query_is_logged_with_request_id_at_debug(debug_client, log_lines):
    client = debug_client
    response = client.get("/pc-builder-app/table")
    rid = response.headers["X-Request-ID"]
    queries = [line for line in log_lines("db.query") if line.get("request_id") == rid]
    assert len(queries) == 1
    q = queries[0]
    assert q["logger"] == "pcbuilder.db"
    assert q["sql"].startswith("SELECT id, category, name, brand, price, attributes FROM components")
    assert q["rows"] == 58
    assert isinstance(q["duration_ms"], float) and q["duration_ms"] >= 0
    assert round(q["duration_ms"], 3) == q["duration_ms"]

    response = client.get("/pc-builder-app/builder?cpu=1&motherboard=9")
    rid = response.headers["X-Request-ID"]
    queries = [line for line in log_lines("db.query") if line.get("request_id") == rid]
    assert len(queries) == 2  # the options list, then the chosen parts
    assert [q["rows"] for q in queries] == [58, 2]
    assert all("duration_ms" in q for q in queries)
    finished = log_lines("request.finished")[-1]
    assert finished["db_queries"] == 2 and finished["db_rows"] == 60


def test_a_slow_query_is_a_warning_at_any_level(app, client, log_lines):
    app.config["DB_SLOW_MS"] = 0.0  # every query is "slow"
    response = client.get("/pc-builder-app/table")
    (slow,) = log_lines("db.slow_query")
    assert slow["level"] == "WARNING" and slow["threshold_ms"] == 0.0 and slow["rows"] == 58
    assert slow["request_id"] == response.headers["X-Request-ID"]
    assert slow["sql"].startswith("SELECT id, category")


def test_readyz_reports_catalog(client):
    response = client.get("/pc-builder-app/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "components": 58}


def test_readyz_503_when_database_is_gone(app, client, tmp_path):
    app.config["DATABASE"] = str(tmp_path / "missing" / "nope.sqlite3")
    response = client.get("/pc-builder-app/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable" and body["error"]
    assert not (tmp_path / "missing" / "nope.sqlite3").exists()  # not silently created


def test_healthz_needs_no_database(app, client, tmp_path):
    app.config["DATABASE"] = str(tmp_path / "missing.sqlite3")
    response = client.get("/pc-builder-app/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
