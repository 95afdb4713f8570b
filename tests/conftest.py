"""Fixtures shared by the tiers that start real processes."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A real nginx + 2 uWSGI stack started with ./stack up -d, stopped after the module."""
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
    one reason the header states; in CI (STACK_REAL_TIER=required) they run and fail."""
    from tests.support import real

    reason = real.skip_reason()
    if reason is None or real.REQUIRED:
        return
    for item in items:
        if item.get_closest_marker("real"):
            item.add_marker(pytest.mark.skip(reason=reason))
