"""Browser tests: the app served by waitress on a real port, driven by Playwright in Debian's headless Chromium.

``make test`` installs both (the ``chromium`` package and the ``playwright`` library; Playwright's own browser
download is never used). Each test gets a fresh browser context; :func:`shot` saves a screenshot of a page
under ``tests/ui/screenshots/`` (git-ignored) so a run leaves pictures of every main page.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..helpers import PASSWORD, make_user  # noqa: F401  (make_user: for the tests of this folder)
from ..servers import free_port, serving

SCREENSHOTS = Path(__file__).parent / "screenshots"
#: flags for a root, offline, headless Chromium (no sandbox as root; no calls home, which this network refuses)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium_path() -> str:
    path = os.environ.get("NUDGE_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise RuntimeError("Chromium not found: run `make test`, which installs the Debian package chromium")
    return path


@pytest.fixture
def ui_port() -> int:
    return free_port()


@pytest.fixture
def config(config, ui_port):
    """The app's settings, with links pointing at the live server."""
    return {**config, "BASE_URL": f"http://127.0.0.1:{ui_port}"}


@pytest.fixture
def live_server(app, ui_port) -> Iterator[str]:
    """The app under waitress (as ``nudge web`` runs it) in a thread; yields its base URL."""
    with serving(app, ui_port) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _watched_page(browser, live_server, what: str):
    """A page in a fresh browser context; fails the test on its JavaScript errors and CSP violations."""
    context = browser.new_context(base_url=live_server, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.nudge_errors = errors  # a test that provokes an error on purpose takes it out of this list
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    # what the admin pages' Content-Security-Policy blocked (an inline script or style, an eval) is an error too
    pg.on(
        "console",
        lambda msg: errors.append(msg.text) if msg.type == "error" and "Content Security Policy" in msg.text else None,
    )
    yield pg
    context.close()
    assert not errors, f"JavaScript errors or CSP violations on {what}: {errors}"


@pytest.fixture
def page(browser, live_server):
    yield from _watched_page(browser, live_server, "the page")


@pytest.fixture
def other_page(browser, live_server):
    """A second, independent browser (its own cookies): another person, or the same person elsewhere."""
    yield from _watched_page(browser, live_server, "the other page")


def shot(page, name: str) -> Path:
    """Save a full-page screenshot as ``tests/ui/screenshots/<name>.png``."""
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page, email: str, password: str = PASSWORD) -> None:
    """Sign in through the real form, as a person would."""
    page.goto("/admin/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/admin/(\?.*)?$"))
