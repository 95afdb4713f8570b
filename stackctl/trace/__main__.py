"""``python3 -m stackctl.trace [--json]``: the twelve steps as the README's table, or as
JSON for the dashboard tests (tests/logql/dashboards.test.mjs reads the names from it)."""
import json
import sys

from .steps import as_data, markdown_table

if sys.argv[1:] == ["--json"]:
    print(json.dumps(as_data(), indent=1))
elif sys.argv[1:]:
    print("usage: python3 -m stackctl.trace [--json]", file=sys.stderr)
    sys.exit(2)
else:
    print(markdown_table())
