"""Fixtures shared by the tiers that start real processes."""
from __future__ import annotations

import os
import signal

import pytest

# A shell's background job (`./stack test &`, nohup, a CI runner's script) starts with SIGINT
# ignored, and every program it starts inherits that; a shell cannot even trap it then. Tests
# stop some of their programs with INT, as Ctrl-C does: they need it at its default.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def shared_stack(tmp_path_factory):
    """One default stack for every module marked ``reads_stack`` (each xdist worker has its own)."""
    from tests.support.stack import start_stack, stop_stack

    running = start_stack(tmp_path_factory.mktemp("shared-stack"))
    try:
        yield running
    finally:
        stop_stack(running)


@pytest.fixture(scope="module")
def stack(request, tmp_path_factory):
    """A real nginx + 2 uWSGI stack started with ./stack up -d, stopped after the module.

    A module marked ``reads_stack`` only sends requests and reads what they left (its own
    request ids), so it gets the session's shared stack instead: each stack costs seconds
    to start and stop. A module that stops, kills, reloads or rate-limits it, or checks
    every line of its files, keeps a stack of its own."""
    if request.node.get_closest_marker("reads_stack"):
        yield request.getfixturevalue("shared_stack")
        return
    from tests.support.stack import start_stack, stop_stack

    running = start_stack(tmp_path_factory.mktemp("stack"))
    try:
        yield running
    finally:
        stop_stack(running)


def pytest_report_header(config):
    from tests.support import real

    reason = real.skip_reason()
    if reason is None:
        return "real Loki/Alloy tier: " + ", ".join(real.binary(n) for n in real.BINARIES)
    return ("real Loki/Alloy tier: MISSING, and STACK_REAL_TIER=required: it fails: " if real.REQUIRED
            else "") + reason


def pytest_collection_modifyitems(config, items):
    """Without the real binaries (and outside CI) every ``real`` test is skipped for the
    one reason the header states; in CI (STACK_REAL_TIER=required) they run and fail.
    On an xdist worker the slow tiers come first (tests/support/tiers.py)."""
    from tests.support import real

    if os.environ.get("PYTEST_XDIST_WORKER"):
        from tests.support.tiers import start_order

        start_order(items)

    reason = real.skip_reason()
    if reason is None or real.REQUIRED:
        return
    for item in items:
        if item.get_closest_marker("real"):
            item.add_marker(pytest.mark.skip(reason=reason))


_TIMES = None


def pytest_sessionstart(session):
    from tests.support.tiers import Times

    global _TIMES
    _TIMES = Times()


def pytest_runtest_logreport(report):
    if _TIMES is not None:
        _TIMES.add(report)


def pytest_terminal_summary(terminalreporter):
    """Each tier's time, so a run (CI's included) states it beside the others."""
    if _TIMES is None or not _TIMES.tiers:
        return
    terminalreporter.write_sep("=", "time per tier")
    for line in _TIMES.lines():
        terminalreporter.write_line(line)


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, unknown without it
def pytest_xdist_make_scheduler(config, log):
    """With ``-n`` and ``--dist loadfile`` (./stack test): one module, or one whole tier
    that shares session fixtures, per worker at a time (tests/support/tiers.py)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from tests.support.tiers import make_scheduler

    return make_scheduler(config, log)
