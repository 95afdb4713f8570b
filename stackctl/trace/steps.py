"""The twelve steps of one request: the one definition.

``./stack trace`` (``derivation.py``: one Python function per step), the request-trace dashboard
(``logql.py``: one LogQL function per step, same name) and the README's table
(tests/unit/test_trace_steps.py) all read this table. Step N is derived by
``derivation.step_NN_<key>`` and queried by ``logql.step_NN_<key>``.

    python3 -m stackctl.trace            # the README's table (Markdown)
    python3 -m stackctl.trace --json     # the definition, for the dashboard tests (node)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Step:
    number: int
    key: str    #: names the step's functions: derivation.step_NN_<key>, logql.step_NN_<key>
    name: str
    layer: str  #: the layer that knows it ("app/uwsgi": the hand-back between them)
    timed_by: str  #: the log field(s) that time it, as the README's table says

    @property
    def function(self) -> str:
        return f"step_{self.number:02d}_{self.key}"

    @property
    def label(self) -> str:
        """The ``step`` label of the dashboard's rows: two digits, so rows sort as text."""
        return f"{self.number:02d}"

    @property
    def clock(self) -> str:
        """Whose clock times it (for its resolution): the first layer named."""
        return self.layer.split("/")[0]


STEPS = (
    Step(1, "client_sends", "client sends the request", "browser",
         "`browser.timing` event: `timeOrigin + requestStart`"),
    Step(2, "nginx_receives", "NGINX receives it", "nginx", "`msec − request_time`"),
    Step(3, "nginx_picks_upstream", "NGINX picks an uWSGI server", "nginx",
         "`upstream_addr`; connected at step 2 + `upstream_connect_time`"),
    Step(4, "uwsgi_receives", "uWSGI receives it, translates to WSGI", "uwsgi", "`start_us` (µs)"),
    Step(5, "uwsgi_hands_to_flask", "uWSGI hands it to Flask", "app",
         "`start_us` of `request.finished` (at DEBUG: `request.started`)"),
    Step(6, "flask_works", "Flask works (database, logic)", "app",
         "`db_start_us`, `db_queries`, `db_ms`, `db_rows` of `request.finished` (at DEBUG: each "
         "`db.query`)"),
    Step(7, "flask_responds", "Flask builds the response", "app",
         "`request.finished` (`time`, `status`, `bytes`, `duration_ms`)"),
    Step(8, "flask_returns", "Flask returns it to uWSGI", "app/uwsgi", "end of the WSGI call (≈ step 7)"),
    Step(9, "uwsgi_translates", "uWSGI translates the response", "uwsgi", "`start_us + duration_us`"),
    Step(10, "uwsgi_sends", "uWSGI sends it to NGINX", "nginx", "step 2 + `upstream_response_time`"),
    Step(11, "nginx_sends", "NGINX sends it to the client", "nginx", "`msec`"),
    Step(12, "client_receives", "the client receives and renders", "browser",
         "`responseEnd`, `domContentLoadedEventEnd`, `loadEventEnd`"),
)
BY_NUMBER = {s.number: s for s in STEPS}
#: A file NGINX serves itself has no upstream: steps 1-3 and 11-12 only.
STATIC_STEPS = (1, 2, 3, 11, 12)
#: The steps that must be in time order: client send <= NGINX receive <= uWSGI start <=
#: Flask start <= Flask end <= uWSGI end <= NGINX end <= client receive.
ORDER_CHAIN = (1, 2, 4, 5, 7, 9, 11, 12)
#: Resolution of each layer's clock, in seconds (NGINX's $msec is whole milliseconds).
RESOLUTION_S = {"nginx": 0.001, "uwsgi": 1e-6, "app": 1e-6, "browser": 1e-4}


def as_data() -> list[dict]:
    """The definition as JSON-able data (with each step's row label)."""
    return [{**asdict(s), "label": s.label} for s in STEPS]


def markdown_table() -> str:
    """The README's table of the twelve steps."""
    rows = ["| # | step | layer | log field that times it |", "|---|---|---|---|"]
    rows += [f"| {s.number} | {s.name} | {s.layer} | {s.timed_by} |" for s in STEPS]
    return "\n".join(rows)
