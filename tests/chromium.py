"""Headless Chromium for the browser tests and the dashboard's benchmark: Debian's
``chromium`` package (``just browser`` installs it), driven by Playwright.

Without it the browser tests are skipped, except under CI=true, where they fail: a
browser test that did not run must not pass as one that did."""

from __future__ import annotations

import os
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM = os.environ.get("ROOST_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
HAVE_CHROMIUM = os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)
MISSING = f"{CHROMIUM} not found: install Debian's chromium (`just browser`)"

# Marks a test (or, as ``pytestmark``, a module) that needs the browser: skipped without
# it before any fixture starts, except under CI=true, where the ``browser`` fixture
# fails instead.
needs_chromium = pytest.mark.skipif(not HAVE_CHROMIUM and not IN_CI, reason=MISSING)


def launch(playwright: Any) -> Any:
    """Start headless Chromium; fails the test, naming what to install, if it is absent."""
    if not HAVE_CHROMIUM:
        pytest.fail(MISSING + " (CI=true: the browser tests must run)")
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
