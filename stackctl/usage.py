"""``./stack help``: the commands, and every setting from the one table in settings.py.

Standard library only, so it works before ``./stack`` has made its venv.
"""
from __future__ import annotations

import textwrap

from .settings import SETTINGS

COMMANDS = """\
usage: ./stack COMMAND
  up [-d]           start nginx + APP_INSTANCES uWSGI servers (foreground; -d: background)
  down              stop gracefully
  reload            gracefully reload the uWSGI instances
  status [--json]   each process, its PID and health
  logs [-f] [-n N] [--layer L,..] [--level LEVEL] [--status S,..] [--request ID]
                    all layers' JSON lines, one per line, in time order (-f: then new ones)
  trace ID|--last [--json] [--files]  the twelve steps of one request
  alerts [--json]   the alerts firing or pending now (docs/alerts.md)
  test [PYTEST ARGS]  install what the tests need, then run all tests
  test unit [ARGS]  the fast tier: only the unit tests, with only the venv (seconds)
  k8s render [--out DIR] [-f VALUES]...  Kubernetes: chart manifests and the official
                    charts' values files (deploy/README.md)
  bench [ARGS]      what observability costs, measured (= ./bench/run; bench/README.md)
down, reload, status, logs, trace and alerts use the settings the running stack was started with.
"""


def text() -> str:
    width = max(len(s.name) for s in SETTINGS)
    lines = [COMMANDS, "Settings (environment variables; `up` checks every one):"]
    for s in SETTINGS:
        default = s.default_text or "unset"
        body = textwrap.wrap(f"{s.meaning} [default: {default}]", 96 - width - 4)
        lines.append(f"  {s.name:<{width}}  {body[0]}")
        lines += [f"  {'':<{width}}  {more}" for more in body[1:]]
    lines.append("PYTHON: the interpreter that creates the venv (default python3). See docs/stack.md.")
    return "\n".join(lines)


#: Where docs/stack.md holds the table :func:`markdown_table` writes (a test keeps them equal).
TABLE_BEGIN = "<!-- settings: generated from stackctl/settings.py by `./stack help --markdown` -->"
TABLE_END = "<!-- end of settings -->"


def markdown_table() -> str:
    """The settings as docs/stack.md shows them: every entry of the one table, in order."""
    rows = [TABLE_BEGIN, "| variable | default | meaning |", "|---|---|---|"]
    for s in SETTINGS:
        default = f"`{s.default_text}`" if s.default_text and not s.shown else (s.shown or "unset")
        rows.append(f"| `{s.name}` | {default} | {s.meaning.replace('|', chr(92) + '|')} |")
    rows.append(TABLE_END)
    return "\n".join(rows)
