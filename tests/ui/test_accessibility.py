"""Accessibility: axe-core (from npm, ``server/assets``) run in Chromium on every admin page and every public
page finds no serious or critical violation.

The admin pages are the ones ``bench/bench_admin_pages.py`` times (one list serves both), on the same data at a
small size; the public pages are those a contact opens from an email or a site: the hosted form and its
confirmation, the unsubscribe and preference pages, and the sign-in page.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.bench_admin_pages import admin_pages, fill
from bench.crm_data import admin_client

from .conftest import make_user, shot, sign_in

AXE = Path(__file__).resolve().parents[2] / "server" / "assets" / "node_modules" / "axe-core" / "axe.min.js"
CONTACTS = 3100
#: runs axe on the whole document; answers the violations with what a reader needs to find each one
RUN_AXE = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                       nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
}"""


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.exists():
        raise RuntimeError(f"axe-core is missing at {AXE}: run `make test`, which installs server/assets' npm packages")
    return AXE.read_text(encoding="utf-8")


def _public_pages(app) -> list[tuple[str, str]]:
    from sqlalchemy import select

    from server import links
    from server.db import get_session
    from server.models import Contact, Form

    with app.app_context():
        public_id = get_session().scalar(select(Contact.public_id).where(Contact.id == 1))
        form_id = get_session().scalar(select(Form.id).where(Form.slug == "newsletter"))
        return [
            ("Sign-in", "/admin/login"),
            ("Hosted form", "/f/newsletter"),
            ("Form confirmation", links.confirm_url(public_id, form_id, None, app=app)),
            ("Unsubscribe", links.unsubscribe_url(public_id, "email", app=app)),
            ("Preferences", links.preferences_url(public_id, app=app)),
        ]


def _violations(page, url: str, axe_source: str) -> list[dict] | None:
    """The serious and critical violations on the page at *url*; None when it is not a whole HTML page."""
    response = page.goto(url)
    assert response is not None and response.status == 200, (url, response and response.status)
    if "text/html" not in response.headers.get("content-type", "") or "<html" not in response.text()[:300].lower():
        return None  # JSON, or a part htmx swaps into a page checked on its own
    page.wait_for_load_state("networkidle")
    page.add_script_tag(content=axe_source)
    return [v for v in page.evaluate(RUN_AXE) if v["impact"] in ("serious", "critical")]


@pytest.mark.sqlite  # the pages' data is bench/'s, written with SQLite's SQL
@pytest.mark.slow
@pytest.mark.timeout(600)  # every admin page through axe: 120-150 s in full runs, over 300 at a load of 14
def test_no_page_has_a_serious_or_critical_violation(app, browser, live_server, axe_source):
    ids = fill(app, CONTACTS, audit_rows=500)
    make_user(app, "ada@example.com", role="admin")
    pages = [(n, u) for n, u in admin_pages(app, admin_client(app), ids, CONTACTS) if isinstance(u, str)]
    # the admin pages set a Content-Security-Policy without inline scripts: axe is injected as one
    context = browser.new_context(base_url=live_server, bypass_csp=True, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        found, checked = {}, []
        for name, url in _public_pages(app):
            violations = _violations(page, url, axe_source)
            checked.append(name)
            if violations:
                found[name] = violations
        sign_in(page, "ada@example.com")
        for name, url in pages:
            violations = _violations(page, url, axe_source)
            if violations is None:
                continue
            checked.append(name)
            if violations:
                found[name] = violations
                shot(page, f"a11y-{name}")
    finally:
        context.close()
    assert not found, found
    assert not errors, errors
    assert len(checked) >= 30 and {"Dashboard", "Hosted form", "Broadcasts: the list"} <= set(checked), checked
