"""The two views of a trace: the waterfall (the default) and the full table (--table).

The waterfall draws every step and hop on one time axis fitted to COLUMNS, in Unicode
blocks or, when the output cannot carry them, in plain ASCII."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stackctl import trace
from stackctl.trace import table, waterfall
from tests.support.recorded_trace import NGINX, RID, fetch_of_a_page, kept_detail, recorded, recorded_at_info
from tests.support.tools import REPO_ROOT

BLOCKS = "▏▎▍▌▋▊▉█"


def rows(text: str) -> dict[str, str]:
    """The waterfall's rows by label (step rows as 'N name', hop rows by their name)."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(\s?\d{1,2}|  ) (.{12,40}?)\s{2,}", line)
        if m:
            out[(m.group(1).strip() + " " + m.group(2).strip()).strip()] = line
    return out


def bar_cells(line: str) -> int:
    """How many columns a row's bar covers (eighths count as part of a column)."""
    return sum(1 for c in line if c in BLOCKS or c == "#")


@pytest.mark.parametrize("columns", [40, 60, 80, 100, 160])
@pytest.mark.parametrize("unicode", [True, False])
def test_the_waterfall_fits_the_terminal(columns, unicode):
    for lines in (recorded(), recorded_at_info(), kept_detail()):
        text = waterfall.render(trace.derive(lines, RID), "/var/log/stack", columns=columns, unicode=unicode)
        too_long = [line for line in text.splitlines() if len(line) > columns]
        assert not too_long, too_long


def test_every_step_and_hop_has_a_row_on_one_axis():
    result = trace.derive(recorded_at_info(), RID)
    text = waterfall.render(result, columns=120)
    by_label = rows(text)
    for n, name in ((1, "client sends the request"), (6, "Flask works (database, logic)"),
                    (12, "the client receives and renders")):
        assert f"{n} {name}" in by_label, by_label.keys()
    for hop in ("network: the request to NGINX", "queue before uWSGI (hand-off)", "Flask: database and logic",
                "network: the response to the client", "renders: DOMContentLoaded", "renders: load"):
        assert hop in by_label, by_label.keys()
    # Marks move right with time (one axis for all rows), which starts at 0 ms.
    mark = {s["number"]: by_label[f"{s['number']} {s['name']}"].index("│") for s in result["steps"]}
    by_time = sorted(result["steps"], key=lambda s: s["time"])
    assert [mark[s["number"]] for s in by_time] == sorted(mark.values())
    # to scale: 82.7 ms of the 132.6 ms from the first step to the page's load event
    width = waterfall.Canvas(120, waterfall.UNICODE).bar_width
    assert abs((mark[12] - mark[1]) - 82.7 / 132.6 * width) <= 1
    (axis,) = [line for line in text.splitlines() if re.fullmatch(r"\s+0 ms(\s+\d+)+", line)]
    assert axis.index("0 ms") == mark[1]


def test_the_longest_bar_is_where_the_time_went():
    """The recorded page: Flask took 74 of NGINX's 75 ms, the browser rendered for 50 ms."""
    by_label = rows(waterfall.render(trace.derive(recorded_at_info(), RID), columns=120))
    hops = {label: bar_cells(line) for label, line in by_label.items() if not re.match(r"\d", label)}
    assert max(hops, key=hops.get) == "Flask: database and logic", hops
    assert hops["Flask: database and logic"] > 5 * hops["network: the request to NGINX"]
    assert "database: 1 query" in by_label  # the wide event's database time, under Flask


def test_ascii_when_the_output_cannot_carry_blocks():
    assert waterfall.can_draw("utf-8") and not waterfall.can_draw("ascii") and not waterfall.can_draw(None)
    text = waterfall.render(trace.derive(kept_detail(), RID), columns=100, unicode=False)
    assert text.isascii() and "#" in text and "|" in text
    unicode = waterfall.render(trace.derive(kept_detail(), RID), columns=100)
    assert not unicode.isascii() and "█" in unicode


@pytest.fixture
def log_dir():
    """A folder with a short path: the trace names LOG_DIR in a line, and a path is never
    broken, so pytest's own (longer under xdist) would decide the width checked below."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="trace-") as path:
        yield Path(path)


def test_the_command_draws_ascii_for_an_ascii_terminal(log_dir):
    """A real ./stack trace process whose stdout is ASCII (PYTHONIOENCODING), COLUMNS=72."""
    import json

    for layer in ("nginx", "uwsgi", "app", "browser"):
        (log_dir / layer).mkdir()
    lines = recorded()
    (log_dir / "nginx" / "access.log").write_text("".join(json.dumps(r) + "\n" for r in lines if r["layer"] == "nginx"))
    (log_dir / "uwsgi" / "app1.log").write_text("".join(json.dumps(r) + "\n" for r in lines if r["layer"] == "uwsgi"))
    (log_dir / "app" / "app1.log").write_text("".join(json.dumps(r) + "\n" for r in lines if r["layer"] == "app"))
    (log_dir / "browser" / "app2.log").write_text("".join(json.dumps(r) + "\n" for r in lines if r["layer"] == "browser"))
    env = {k: v for k, v in os.environ.items() if k not in ("LOKI_URL",)}
    env.update(LOG_DIR=str(log_dir), RUN_DIR=str(log_dir / "run"), COLUMNS="72", PYTHONIOENCODING="ascii",
               LOKI_BIN="off", ALLOY_BIN="off")
    for argv in ([RID], [RID, "--ascii"]):
        out = subprocess.run([sys.executable, "-m", "stackctl", "trace", *argv], env=env, cwd=REPO_ROOT,
                             capture_output=True, text=True, check=True).stdout
        assert out.isascii() and "NGINX receives it" in out and "#" in out
        assert max(map(len, out.splitlines())) <= 72
    env["PYTHONIOENCODING"] = "utf-8"
    out = subprocess.run([sys.executable, "-m", "stackctl", "trace", RID], env=env, cwd=REPO_ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert "█" in out


def test_missing_steps_are_rows_that_say_so():
    lines = [r for r in recorded() if r["layer"] != "browser"]
    text = waterfall.render(trace.derive(lines, RID), columns=160)
    by_label = rows(text)
    assert "MISSING: no browser.timing beacon" in by_label["1 client sends the request"]
    assert "MISSING" in by_label["12 the client receives and renders"]
    assert "missing steps: 1, 12" in text


def test_a_static_file_has_its_five_steps():
    static = {**NGINX, "uri": "/pc-builder-app/static/css/app.css", "request_time": 0.0, "upstream_addr": "",
              "upstream_status": "", "upstream_connect_time": "", "upstream_header_time": "",
              "upstream_response_time": ""}
    by_label = rows(waterfall.render(trace.derive([static], RID), columns=120))
    assert [label for label in by_label if re.match(r"\d", label)] == [
        "1 client sends the request", "2 NGINX receives it", "3 NGINX picks an uWSGI server",
        "11 NGINX sends it to the client", "12 the client receives and renders"]
    assert "NGINX answers itself" in by_label


def test_a_fetch_has_steps_1_and_12_and_no_render_rows():
    lines = fetch_of_a_page()
    result = trace.derive(lines, lines[0]["request_id"])
    steps = {s["number"]: s for s in result["steps"]}
    assert result["missing"] == [] and result["order"]["consistent"]
    assert steps[1]["source"] == steps[12]["source"] == "measured"
    assert "Resource Timing" in steps[1]["detail"] and "Resource Timing" in steps[12]["detail"]
    assert steps[12]["kind"] == "fetch" and steps[12]["dom_content_loaded"] is None and steps[12]["load_end"] is None
    text = waterfall.render(result, columns=100)
    assert "renders:" not in text and "12 the client receives" in text
    assert "DOMContentLoaded" not in table.render(result)


def test_the_table_keeps_every_column():
    text = table.render(trace.derive(recorded(), RID), "/var/log/stack")
    assert "time (local)" in text and "source" in text and "hops" in text
    for n in range(1, 13):
        assert f"\n{n:>2}  " in text
