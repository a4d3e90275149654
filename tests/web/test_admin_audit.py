"""The audit log page through the test client: who may read it, what it shows (escaped), its filters by actor,
kind of change and date range, keyset pages, and that an erased contact leaves no personal data in it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from server.db import get_session
from server.models import AuditEntry, Contact

from ..helpers import signed_in
from .crm_helpers import BREAKOUT, SCRIPT, escaped, post

DAY = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def _ids(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr id="audit-(\d+)">', page)]


def _log(app, *rows: dict) -> list[int]:
    """Entries as the code writes them (``audit()``), with the given moments; their ids in order."""
    with app.app_context():
        session = get_session()
        entries = [AuditEntry(**{"target_type": "rule", "target_id": "1", "detail": {}, **row}) for row in rows]
        session.add_all(entries)
        session.commit()
        return [e.id for e in entries]


def test_editors_and_admins_read_the_log_viewers_do_not(app):
    viewer, editor, admin = signed_in(app, "viewer"), signed_in(app, "editor"), signed_in(app, "admin")
    assert viewer.get("/admin/audit/").status_code == 403
    assert 'href="/admin/audit/"' not in viewer.get("/admin/").get_data(as_text=True)  # no link that leads to a 403
    for client in (editor, admin):
        assert client.get("/admin/audit/").status_code == 200
        assert 'href="/admin/audit/">Audit log</a>' in client.get("/admin/").get_data(as_text=True)
    assert post(admin, "/admin/audit/").status_code == 405  # the log is read, never written, here


def test_the_log_shows_who_changed_what_escaped(app):
    editor = signed_in(app, "editor", email="ed@example.com")
    assert post(editor, "/admin/segments/new", name="VIPs", condition='tag == "vip"').status_code == 302
    (hostile,) = _log(
        app,
        {"actor": f"apply:{SCRIPT}", "action": "rule.activate", "target_id": BREAKOUT, "detail": {"note": SCRIPT}},
    )
    page = editor.get("/admin/audit/").get_data(as_text=True)
    rows = _ids(page)
    assert rows[0] == hostile and len(rows) == 2  # newest first
    escaped(page, f"apply:{SCRIPT}", BREAKOUT, SCRIPT)
    created = page.split(f'<tr id="audit-{rows[1]}">')[1].split("</tr>")[0]
    assert "ed@example.com" in created and "segment.created" in created and "segment VIPs" in created


def test_filters_by_actor_kind_and_dates_and_pages_by_keyset(app):
    editor = signed_in(app, "editor", email="ed@example.com")
    me = get_user_actor(app, "ed@example.com")
    ids = _log(
        app,
        *(
            {
                "actor": me if n % 2 else "cli",
                "action": "x.y",
                "target_type": "rule" if n % 3 else "segment",
                "at": DAY + timedelta(days=n // 40),
            }
            for n in range(120)
        ),
    )
    first = editor.get("/admin/audit/").get_data(as_text=True)
    assert _ids(first) == ids[::-1][:50]
    link = re.search(r'<a class="button" rel="next" href="([^"]+)">Older entries</a>', first).group(1)
    second = editor.get(link.replace("&amp;", "&")).get_data(as_text=True)
    assert _ids(second) == ids[::-1][50:100]
    link = re.search(r'rel="next" href="([^"]+)"', second).group(1).replace("&amp;", "&")
    third = editor.get(link).get_data(as_text=True)
    assert _ids(third) == ids[::-1][100:] and 'rel="next"' not in third

    def shown(query: str) -> list[int]:
        out, url = [], f"/admin/audit/?{query}"
        while url:
            response = editor.get(url)
            assert response.status_code == 200, response.get_data(as_text=True)
            page = response.get_data(as_text=True)
            out += _ids(page)
            found = re.search(r'rel="next" href="([^"]+)"', page)
            url = found.group(1).replace("&amp;", "&") if found else None
        return out

    mine = [i for n, i in enumerate(ids) if n % 2][::-1]
    assert shown("actor=ed@example.com") == mine == shown(f"actor={me}")
    assert shown("kind=segment") == [i for n, i in enumerate(ids) if n % 3 == 0][::-1]
    assert shown("since=2026-03-11&until=2026-03-11") == ids[40:80][::-1]  # the whole day, UTC
    assert shown("since=2026-03-12") == ids[80:][::-1]
    assert (
        shown("actor=cli&kind=rule&until=2026-03-10")
        == [i for n, i in enumerate(ids[:40]) if n % 2 == 0 and n % 3][::-1]
    )
    assert shown("actor=nobody@example.com") == []
    # a page link belongs to its filters: used with others, it is refused rather than paging through them
    assert editor.get(link + "&kind=segment").status_code == 400
    assert editor.get("/admin/audit/?since=yesterday").status_code == 400
    assert editor.get("/admin/audit/?after=forged").status_code == 400


def get_user_actor(app, email: str) -> str:
    from sqlalchemy import select

    from server.models import User

    with app.app_context():
        return f"user:{get_session().scalar(select(User.id).where(User.email == email))}"


@pytest.fixture
def person(app):
    with app.app_context():
        session = get_session()
        contact = Contact(email="erin.erased@example.com", first_name="Erin", last_name="Before", fields={})
        session.add(contact)
        session.commit()
        return contact.id


def test_an_erased_contact_leaves_no_personal_data_in_the_log(app, person):
    admin = signed_in(app, "admin")
    changed = post(
        admin,
        f"/admin/contacts/{person}",
        first_name="Erin",
        last_name="Erasedson",
        email="erin.erased@example.com",
        score="0",
    )
    assert changed.status_code == 302
    # an entry that quoted the address (as a merge or an import report may)
    _log(
        app,
        {
            "actor": "cli",
            "action": "contacts.merged",
            "target_type": "contact",
            "target_id": "0",
            "detail": {"kept": "erin.erased@example.com"},
        },
    )
    before = admin.get("/admin/audit/").get_data(as_text=True)
    assert "erin.erased@example.com" in before and f'href="/admin/contacts/{person}"' in before
    assert post(admin, f"/admin/contacts/{person}/erase", confirm="yes").status_code == 302
    after = admin.get("/admin/audit/?kind=contact").get_data(as_text=True)
    assert "contact.erased" in after and f"contact {person}" in after
    for data in ("erin", "Erin", "Erasedson"):
        assert data not in after
    assert f'href="/admin/contacts/{person}"' not in after  # no link to a page that is gone
