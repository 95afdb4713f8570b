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
  logs [-f] [-n N] [--request ID]   all layers' JSON lines, prettified, in time order
  trace ID|--last [--json] [--files]  the twelve steps of one request
  test [PYTEST ARGS]  install what the tests need, then run all tests
  k8s render [--out DIR] [-f VALUES]...  Kubernetes: chart manifests and the official
                    charts' values files (README "Past one host")
down, reload, status, logs and trace use the settings the running stack was started with.
"""


def text() -> str:
    width = max(len(s.name) for s in SETTINGS)
    lines = [COMMANDS, "Settings (environment variables; `up` checks every one):"]
    for s in SETTINGS:
        default = s.default_text or "unset"
        body = textwrap.wrap(f"{s.meaning} [default: {default}]", 96 - width - 4)
        lines.append(f"  {s.name:<{width}}  {body[0]}")
        lines += [f"  {'':<{width}}  {more}" for more in body[1:]]
    lines.append("PYTHON: the interpreter that creates the venv (default python3). See README.md.")
    return "\n".join(lines)
