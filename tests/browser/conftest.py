"""Browser tests of the console (issue 11): headless Debian chromium driven by Playwright
for Python through executable_path (never a downloaded browser), against the real demo
(`channelmgr run` as a subprocess, tests/browser/demo.py).

Without /usr/bin/chromium (or the playwright package) they are skipped with the reason,
except in CI (CI=true), where .ci/run installs chromium and a missing one fails."""

from __future__ import annotations

import os

import pytest

from tests.browser.console import ARGS, CHROMIUM
from tests.browser.demo import Demo, chromium_path

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"the browser tests need {reason} in CI (.ci/run installs chromium)", pytrace=False)
    pytest.skip(f"{reason}: apt-get install chromium (.ci/run does), pip install -e '.[test]'")


@pytest.fixture(scope="module")
def browser():
    if chromium_path() is None:
        _unavailable(f"{CHROMIUM} (Debian's chromium) is not installed")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    with sync_playwright() as p:
        # launch() gives the browser a fresh, temporary user-data directory of its own
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def context(browser):
    """A fresh browser profile state (cookies, storage): one person."""
    ctx = browser.new_context(viewport={"width": 1440, "height": 900}, locale="en-US")
    ctx.set_default_timeout(60_000)
    yield ctx
    ctx.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo on its embedded default, SQLite in its working folder; its first full sync done."""
    d = Demo(tmp_path_factory.mktemp("demo")).start()
    try:
        d.wait_settled()
        yield d
    finally:
        rc = d.stop()
    assert rc == 0, d.tail()
