"""bench/report.py's verdicts: a ratio of medians, and how many rounds alone meet the goal."""
from __future__ import annotations

from bench.report import compare, rounds_cell


def _summary(rps, p99):
    return {"median_requests_per_s": sorted(rps)[len(rps) // 2], "requests_per_s": rps,
            "median_latency_ms": {"p99": sorted(p99)[len(p99) // 2]}, "p99_ms": p99,
            "failed_requests": 0}


def test_each_round_is_judged_against_the_goal_next_to_the_medians():
    goal = {"id": "g", "title": "t", "a": "full", "b": "off", "min_rps_ratio": 0.95, "max_p99_ratio": 1.1}
    summary = {"full": _summary([90, 100, 80], [10, 10, 12]), "off": _summary([100, 100, 100], [10, 10, 10])}
    (c,) = compare(summary, [goal], {"full": "full", "off": "off"})
    assert c["rps_ratio"] == 0.9 and not c["goal_met"]
    # round 1: 0.90x req/s; round 2: 1.00x, p99 1.0x (meets); round 3: 0.80x, p99 1.2x
    assert c["round_rps_ratios"] == [0.9, 1.0, 0.8] and c["rounds_meeting_goal"] == 1
    assert rounds_cell(c) == "1/3 (0.80-1.00×)"
