"""The twelve steps have one definition (stackctl/trace/steps.py) that ./stack trace, the
request-trace dashboard and the README all use: step N is ``derivation.step_NN_<key>`` in
Python and ``logql.step_NN_<key>`` in LogQL, with the definition's name and layer."""
from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys

from stackctl.trace import derivation, logql
from stackctl.trace.steps import BY_NUMBER, STEPS, markdown_table
from tests.support.recorded_trace import RID, recorded
from tests.support.tools import REPO_ROOT


def step_functions(module) -> list[str]:
    return sorted(name for name, fn in inspect.getmembers(module, inspect.isfunction)
                  if re.fullmatch(r"step_\d\d_\w+", name) and fn.__module__ == module.__name__)


def test_twelve_steps_numbered_once():
    assert [s.number for s in STEPS] == list(range(1, 13))
    assert len({s.name for s in STEPS}) == len({s.key for s in STEPS}) == 12
    assert {s.clock for s in STEPS} == {"browser", "nginx", "uwsgi", "app"}


def test_each_step_has_one_python_and_one_logql_function_of_the_same_name():
    names = [s.function for s in STEPS]
    assert step_functions(derivation) == names
    assert step_functions(logql) == names
    assert [derivation.FUNCTIONS[s.number].__name__ for s in STEPS] == names
    assert [logql.TIMES[s.label].__name__ for s in STEPS] == names


def test_the_trace_names_each_step_as_defined():
    result = derivation.derive(recorded(), RID)
    assert [(s["number"], s["name"], s["layer"]) for s in result["steps"]] == [
        (s.number, s.name, s.layer) for s in STEPS]


def test_every_dashboard_row_carries_the_definitions_name_and_layer():
    """The LogQL rows label themselves with the definition's step, name and layer (the
    twelve-steps panel shows them as they are)."""
    for variant, row in logql.ROWS.items():
        s = BY_NUMBER[int(row.step)]
        assert (row.step, row.name, row.layer) == (s.label, s.name, s.layer), variant
    for s in STEPS:
        own = logql.TIMES[s.label]()
        assert f'name="{s.name}"' in own or f'"name", "{s.name}"' in own, s.number
        assert f'layer="{s.layer}"' in own or f'"layer", "{s.layer}"' in own, s.number


def test_readme_table_is_the_definition():
    readme = (REPO_ROOT / "README.md").read_text()
    table = re.search(r"^\| # \| step \|.*?(?=\n\n|\Z)", readme, re.M | re.S)
    assert table, "README.md has no twelve-steps table"
    assert table.group(0) == markdown_table(), "README's table differs: python3 -m stackctl.trace prints it"


def test_definition_as_json_for_the_dashboard_tests():
    out = subprocess.run([sys.executable, "-m", "stackctl.trace", "--json"], capture_output=True,
                         text=True, check=True, cwd=REPO_ROOT).stdout
    assert [(d["label"], d["name"], d["layer"]) for d in json.loads(out)] == [
        (s.label, s.name, s.layer) for s in STEPS]
