"""For the tests of the Contacts, Messages and Tasks areas: posting forms, reading flash messages, hostile text."""

from __future__ import annotations

import json
import re

from markupsafe import escape
from sqlalchemy import select

from server.db import get_session
from server.models import AuditEntry

#: text that would run if a page did not escape it: in element content, and breaking out of an attribute
SCRIPT = "<script>alert(1)</script>"
BREAKOUT = '"><img src=x onerror=alert(2)>'


def post(client, url, hx=False, csrf=True, **form):
    """POST *form* as the page's form would (with the CSRF token unless *csrf* is False), or as htmx does."""
    headers = {"HX-Request": "true", "HX-Current-URL": "http://localhost/admin/"} if hx else {}
    if csrf and hx:
        headers["X-CSRF-Token"] = client.csrf
    data = {**form, **({"csrf_token": client.csrf} if csrf and not hx else {})}
    return client.post(url, data=data, headers=headers)


def flash_of(response) -> list[str]:
    """The flash messages an htmx answer carries in ``HX-Trigger``."""
    return [m["text"] for m in json.loads(response.headers["HX-Trigger"])["nudge:flash"]["messages"]]


def page_flash(html: str) -> str:
    return " ".join(re.findall(r'<p class="flash-message flash-\w+">([^<]*)</p>', html))


def escaped(html: str, *texts: str) -> None:
    """*html* shows each of *texts* (which hold markup), escaped, and never as markup."""
    assert "<script>alert" not in html and "<img src=x" not in html
    for text in texts:
        assert str(escape(text)) in html, f"{text!r} is not shown (escaped) on the page"


def audited(app, action):
    with app.app_context():
        rows = list(get_session().scalars(select(AuditEntry).where(AuditEntry.action == action)))
        get_session().expunge_all()
        return rows
