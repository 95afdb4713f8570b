"""The browser every browser test drives: Debian's Chromium through Playwright."""
from __future__ import annotations

import pytest

from tests.support.tools import require_tool

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    chromium_bin = require_tool("chromium")
    import playwright.sync_api as playwright_api
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=chromium_bin, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
