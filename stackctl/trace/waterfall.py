"""``./stack trace``: the request as a waterfall on one time axis, fitted to the terminal.

One row per step (a mark at its time) and, between two steps, one row per hop (a bar
from the one to the other), so the longest bar is where the time went: the network,
NGINX, the queue before uWSGI, Flask and its database queries, the browser's render.
The app's fine events (each query, the template render: kept detail or DEBUG) are bars
inside Flask's hop. Unicode block characters draw the bars to an eighth of a column;
a terminal whose encoding cannot show them gets plain ASCII.
"""
from __future__ import annotations

import math
import textwrap

from . import table

#: What the time between two steps is, by (from, to) step.
HOPS = {
    (1, 2): "network: the request to NGINX",
    (2, 3): "NGINX connects to uWSGI",
    (3, 4): "queue before uWSGI (hand-off)",
    (4, 5): "uWSGI -> Flask (WSGI)",
    (5, 6): "Flask before its first query",
    (6, 7): "Flask: database and logic",
    (7, 8): "the WSGI call returns",
    (8, 9): "uWSGI writes the response",
    (9, 10): "uWSGI -> NGINX",
    (10, 11): "NGINX sends the response",
    (11, 12): "network: the response to the client",
    (3, 11): "NGINX answers itself",
}
UNICODE = {"mark": "│", "thin": "▏", "full": "█", "eighths": " ▏▎▍▌▋▊▉", "event": "·", "arrow": "->"}
ASCII = {"mark": "|", "thin": "'", "full": "#", "eighths": "", "event": "-", "arrow": "->"}
NUMBER_WIDTH, VALUE_WIDTH = 3, 10


def can_draw(encoding: str | None) -> bool:
    """Whether text in ``encoding`` can carry the block characters."""
    try:
        "".join(UNICODE[k] for k in ("mark", "thin", "full", "eighths", "event")).encode(encoding or "ascii")
    except (LookupError, UnicodeEncodeError):
        return False
    return True


def format_ms(ms: float) -> str:
    return f"{ms:.3f}" if abs(ms) < 10 else f"{ms:.1f}" if abs(ms) < 1000 else f"{ms:.0f}"


class Axis:
    """Maps epoch seconds to columns of a bar area ``width`` wide."""

    def __init__(self, start: float, end: float, width: int):
        self.start, self.width = start, width
        self.span = max(end - start, 1e-6)

    def x(self, t: float) -> float:
        return min(max((t - self.start) / self.span * self.width, 0.0), float(self.width))

    def ticks(self) -> str:
        """A line of tick labels: 0 and round numbers of ms, as many as fit."""
        span_ms = self.span * 1000
        raw = span_ms / max(1, self.width // 10)
        power = 10 ** math.floor(math.log10(raw))
        step_ms = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
        line = [" "] * self.width
        value = 0.0
        while value <= span_ms + 1e-9:
            label = f"{value:g}" + (" ms" if value == 0 else "")
            at = round(value / span_ms * self.width)
            if at + len(label) <= self.width and all(c == " " for c in line[max(0, at - 1):at + len(label)]):
                line[at:at + len(label)] = label
            value += step_ms
        return "".join(line).rstrip()


class Canvas:
    """Rows of ``number | label | bar | value``, ``columns`` wide at most."""

    def __init__(self, columns: int, chars: dict):
        self.chars = chars
        self.label_width = max(12, min(40, columns * 2 // 5))
        bar = columns - NUMBER_WIDTH - self.label_width - VALUE_WIDTH - 2
        if bar < 10:  # narrow terminal: shorter labels first
            self.label_width = max(12, self.label_width - (10 - bar))
            bar = columns - NUMBER_WIDTH - self.label_width - VALUE_WIDTH - 2
        self.bar_width = max(4, bar)
        self.rows: list[str] = []

    def fit(self, text: str, width: int) -> str:
        return text if len(text) <= width else text[:width - 1] + ("…" if self.chars is UNICODE else "~")

    def row(self, number: str, label: str, bar: str, value: str) -> None:
        self.rows.append(f"{number:>{NUMBER_WIDTH - 1}} {self.fit(label, self.label_width):<{self.label_width}} "
                         f"{self.fit(bar, self.bar_width):<{self.bar_width}} "
                         f"{self.fit(value, VALUE_WIDTH):>{VALUE_WIDTH}}".rstrip())

    def note(self, number: str, label: str, text: str) -> None:
        """A row with text where the bar and the value go."""
        self.rows.append(f"{number:>{NUMBER_WIDTH - 1}} {self.fit(label, self.label_width):<{self.label_width}} "
                         f"{self.fit(text, self.bar_width + 1 + VALUE_WIDTH)}".rstrip())

    def mark(self, x: float) -> str:
        at = min(round(x), self.bar_width - 1)
        return " " * at + self.chars["mark"]

    def bar(self, x0: float, x1: float) -> str:
        """A bar from column x0 to x1 (fractions: eighths in Unicode, whole columns in ASCII)."""
        start = min(round(x0), self.bar_width - 1)
        eighths = self.chars["eighths"]
        if x1 <= x0:  # nothing to draw (a negative hop: NGINX's 1 ms resolution)
            cells = ""
        elif eighths:
            n8 = round((x1 - x0) * 8)
            cells = self.chars["full"] * (n8 // 8) + (eighths[n8 % 8] if n8 % 8 else "")
        else:
            cells = self.chars["full"] * round(x1 - x0)
        cells = cells or self.chars["thin"]
        return " " * start + cells[:self.bar_width - start]


def extent(trace: dict) -> tuple[float, float] | None:
    """(first, last) epoch seconds the waterfall spans: every step, render and fine event."""
    times = [s["time"] for s in trace["steps"] if s["time"] is not None]
    for s in trace["steps"]:
        times += [t for t in (s.get("dom_content_loaded"), s.get("load_end"), s.get("uwsgi_logged_end")) if t]
    for e in (trace.get("kept_detail") or {}).get("events") or []:
        times += [t for t in (e["start"], e["end"]) if t is not None]
    return (min(times), max(times)) if times else None


def _events_by_hop(trace: dict, present: list[dict]) -> dict[int, list[dict]]:
    """The fine events under the hop that starts at the last step (5, 6 or 7) before them."""
    events = (trace.get("kept_detail") or {}).get("events") or []
    app_steps = [s for s in present if s["number"] in (5, 6, 7)]
    out: dict[int, list[dict]] = {}
    for e in events:
        if e["event"] == "request.started":  # it is step 5 itself
            continue
        home = app_steps[0]["number"] if app_steps else e["step"]
        for s in app_steps:
            if e["start"] is not None and e["start"] >= s["time"] - 1e-6:
                home = s["number"]
        out.setdefault(home, []).append(e)
    return out


def render(trace: dict, where: str = "", columns: int = 100, unicode: bool = True) -> str:
    chars = UNICODE if unicode else ASCII
    out = _wrapped(table.heading(trace, where), columns)
    window = extent(trace)
    if window is None:
        out += ["", "no step of this request has a time"] + _wrapped(table.footer(trace), columns)
        return "\n".join(out)
    canvas = Canvas(columns, chars)
    axis = Axis(*window, canvas.bar_width)
    canvas.row("", "", axis.ticks(), "")
    present = [s for s in trace["steps"] if s["time"] is not None]
    events = _events_by_hop(trace, present)
    for s in trace["steps"]:
        if s["time"] is None:
            canvas.row(str(s["number"]), s["name"], "MISSING: " + s["detail"], "")
            continue
        canvas.row(str(s["number"]), s["name"], canvas.mark(axis.x(s["time"])), f"+{format_ms(s['offset_ms'])}")
        later = [n for n in present if n["number"] > s["number"]]
        if later:
            nxt = later[0]
            name = HOPS.get((s["number"], nxt["number"]), f"step {s['number']} {chars['arrow']} step {nxt['number']}")
            took = (nxt["time"] - s["time"]) * 1000
            canvas.row("", "  " + name, canvas.bar(axis.x(s["time"]), axis.x(nxt["time"])), f"{format_ms(took)} ms")
        for e in events.get(s["number"], []):
            bar = (canvas.bar(axis.x(e["start"]), axis.x(e["end"])) if e["end"] is not None
                   else canvas.mark(axis.x(e["start"])) if e["start"] is not None else "")
            value = f"{format_ms(e['duration_ms'])} ms" if e["duration_ms"] is not None else ""
            canvas.row("", f"    {chars['event']} {e['event']}", canvas.fit(f"{bar} {e['text']}", canvas.bar_width),
                       value)
        if s["number"] == 6 and not events and s.get("db_queries"):
            end = s["time"] + s["db_ms"] / 1000
            canvas.row("", f"    database: {s['db_queries']} quer{'y' if s['db_queries'] == 1 else 'ies'}"
                       + (" (together)" if s["db_queries"] > 1 else ""),
                       canvas.bar(axis.x(s["time"]), axis.x(end)), f"{format_ms(s['db_ms'])} ms")
        if s["number"] == 12:
            _render_rows(canvas, axis, s)
    legend = (f"{chars['mark']} a step, {chars['full']} the time to the next step; ms from the first step"
              f" (= {format_ms((window[1] - window[0]) * 1000)} ms wide)")
    out += [""] + canvas.rows + [""] + _wrapped([legend] + table.footer(trace), columns)
    return "\n".join(out)


def _wrapped(lines: list[str], columns: int) -> list[str]:
    """Text lines folded to the terminal's width (continuations indented)."""
    out = []
    for line in lines:
        for part in line.split("\n"):
            out += textwrap.wrap(part, columns, subsequent_indent="  ", break_on_hyphens=False,
                                   break_long_words=False) or [""]
    return out


def _render_rows(canvas: Canvas, axis: Axis, received: dict) -> None:
    """The browser's render after the response (page views; a fetch has none)."""
    start = received["time"]
    for key, name in (("dom_content_loaded", "renders: DOMContentLoaded"), ("load_end", "renders: load")):
        t = received.get(key)
        if t is not None:
            canvas.row("", "  " + name, canvas.bar(axis.x(start), axis.x(t)), f"{format_ms((t - start) * 1000)} ms")
            start = t
