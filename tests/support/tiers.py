"""The tiers of the suite (tests/<tier>/...): how long each took, printed at the end of
every run, and how pytest-xdist spreads them over its workers (``./stack test``)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

#: Under xdist the slowest tiers start first, so no worker is left with a long module
#: at the end while the other one idles; within a tier the collection order holds.
START_FIRST = ("compose", "real", "integration", "browser", "deploy", "validators")
#: Tiers whose modules share session fixtures (one real Loki stack with its traffic, the
#: rendered charts): each runs whole on one worker instead of once per worker.
WHOLE = ("real", "deploy")


def tier(nodeid: str) -> str:
    parts = nodeid.split("::", 1)[0].split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "tests" else "other"


def scope(nodeid: str) -> str:
    """What one xdist worker runs at a time: a tier in WHOLE, else a module (its
    module-scoped stack is started once)."""
    name = tier(nodeid)
    return f"tests/{name}" if name in WHOLE else nodeid.split("::", 1)[0]


def start_order(items: list) -> None:
    """Sort ``items`` (in place, stable) so the tiers in START_FIRST come first."""
    rank = {name: n for n, name in enumerate(START_FIRST)}
    items.sort(key=lambda item: rank.get(tier(item.nodeid), len(rank)))


def make_scheduler(config, log):
    """xdist's per-file scheduling with ``scope`` as the unit."""
    from xdist.scheduler import LoadFileScheduling

    class ByScope(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scope(nodeid)

    return ByScope(config, log)


@dataclass
class Tier:
    tests: set = field(default_factory=set)
    seconds: float = 0.0  # setup + call + teardown of its tests
    first: float = float("inf")
    last: float = 0.0
    outcomes: dict = field(default_factory=dict)


class Times:
    """Collects every test report (on xdist's controller: every worker's) by tier."""

    def __init__(self):
        self.started = time.time()
        self.tiers: dict[str, Tier] = {}

    def add(self, report) -> None:
        entry = self.tiers.setdefault(tier(report.nodeid), Tier())
        entry.tests.add(report.nodeid)
        entry.seconds += report.duration
        entry.first = min(entry.first, report.start)
        entry.last = max(entry.last, report.stop)
        if report.when == "call" or report.outcome != "passed":
            entry.outcomes[report.nodeid] = report.outcome

    def lines(self) -> list[str]:
        out = []
        for name, entry in sorted(self.tiers.items(), key=lambda kv: kv[1].first):
            counts: dict[str, int] = {}
            for outcome in entry.outcomes.values():
                counts[outcome] = counts.get(outcome, 0) + 1
            summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
            out.append(f"{name:<12} {len(entry.tests):>4} tests  {_clock(entry.seconds):>9} in its tests"
                       f"  {_clock(entry.last - entry.first):>9} from its first to its last  ({summary})")
        out.append(f"{'session':<12} {sum(len(e.tests) for e in self.tiers.values()):>4} tests"
                   f"  {_clock(time.time() - self.started):>9} wall time")
        return out


def _clock(seconds: float) -> str:
    minutes, rest = divmod(max(seconds, 0.0), 60)
    return f"{int(minutes)} min {rest:04.1f} s" if minutes else f"{rest:.1f} s"
