"""Data and pages of the Forms and Broadcasts areas for bench/bench_admin_pages.py: a form with a submission from
every tenth contact, and a broadcast to the VIP segment with its messages (a tenth of them still pending)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text


def fill(app, count: int) -> None:
    """One hosted form and its submissions; one broadcast and its outbox rows (``INSERT … SELECT``)."""
    from server.db import get_session
    from server.models import BroadcastRecord, Form, Template

    with app.app_context():
        session = get_session()
        session.add(Template(channel="email", name="newsletter", parts={"subject": "News", "txt": "News"}))
        form = Form(
            slug="newsletter",
            name="Newsletter",
            channel="email",
            wording="Yes, send me the monthly newsletter",
            fields=["first_name"],
            tags=["newsletter"],
        )
        broadcast = BroadcastRecord(
            ident="november", name="November news", channel="email", template="newsletter", segment="VIPs"
        )
        session.add_all([form, broadcast])
        session.flush()
        session.execute(
            text(
                "INSERT INTO form_submissions (form_id, contact_id, wording, submitted_at, confirmed_at) "
                "SELECT :form, id, :wording, CURRENT_TIMESTAMP, CASE WHEN id % 20 = 0 THEN NULL "
                "ELSE CURRENT_TIMESTAMP END FROM contacts WHERE id % 10 = 0"
            ),
            {"form": form.id, "wording": form.wording},
        )
        members = session.execute(
            text(
                "INSERT INTO messages (key, contact_id, channel, template, status, attempts, data, created_at) "
                "SELECT 'broadcast:november:' || id, id, 'email', 'newsletter', "
                "CASE WHEN id % 10 = 0 THEN 'pending' ELSE 'sent' END, 1, '{}', CURRENT_TIMESTAMP "
                "FROM contacts WHERE id % 4 = 0"
            )
        ).rowcount
        broadcast.members = members
        session.commit()
    del count  # the rows follow the contacts written


def pages(app) -> list[tuple[str, Any]]:
    """The Forms and Broadcasts pages to time."""
    from sqlalchemy import select

    from server.db import get_session
    from server.models import BroadcastRecord, Form

    with app.app_context():
        form_id = get_session().scalar(select(Form.id).where(Form.slug == "newsletter"))
        broadcast_id = get_session().scalar(select(BroadcastRecord.id).where(BroadcastRecord.ident == "november"))
    return [
        ("Forms: the list", "/admin/forms/"),
        ("Forms: one form with its submissions", f"/admin/forms/{form_id}"),
        ("Forms: new form", "/admin/forms/new"),
        ("Broadcasts: the list", "/admin/broadcasts/"),
        ("Broadcasts: one broadcast and its progress", f"/admin/broadcasts/{broadcast_id}"),
        ("Broadcasts: the progress poll", f"/admin/broadcasts/{broadcast_id}/progress"),
        ("Broadcasts: new broadcast", "/admin/broadcasts/new"),
    ]
