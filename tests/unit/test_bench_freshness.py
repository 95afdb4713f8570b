"""bench/freshness.py's poller: a query starts every period even when one takes longer, so a
slow query is not counted as lateness; bounded in flight."""
from __future__ import annotations

import threading
import time

from bench.freshness import every, queryable_between


def test_calls_start_every_period_while_earlier_ones_still_run_and_never_more_than_the_bound():
    starts, running, most = [], [0], [0]
    lock = threading.Lock()

    def slow():
        with lock:
            starts.append(time.monotonic())
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.3)
        with lock:
            running[0] -= 1

    stop = threading.Event()
    poller = threading.Thread(target=every, args=(0.02, slow, stop, 4))
    poller.start()
    time.sleep(1.0)
    stop.set()
    poller.join(5)
    assert not poller.is_alive() and running[0] == 0
    # One after the other, 1 s of 0.3 s calls starts at most 4; overlapping, 4 at a time, ~12.
    assert len(starts) >= 8, starts
    assert most[0] == 4


def test_a_line_is_queryable_between_the_last_query_that_missed_it_and_the_first_that_returned_it():
    key = ("rid-1", "app")
    answered = [(10.0, 10.3, set()), (10.1, 10.9, {key}), (10.2, 10.4, set()), (10.3, 10.5, {key}),
                (10.6, 10.7, {key})]
    # The slow query started at 10.1 returned it, but the one started at 10.2 missed it: after
    # 10.2; first returned at 10.5 (the query of 10.3), not at the slow one's end.
    assert queryable_between(answered, key) == (10.2, 10.5)
    assert queryable_between(answered, ("rid-2", "app")) == (float("-inf"), None)
    assert queryable_between([(1.0, 2.0, {key})], key) == (float("-inf"), 2.0)
