"""The Broadcasts area through the test client: compose from a template and a segment, the audience after consent
and suppression, send now or schedule, the progress fragment's numbers equal to the outbox's — roles, CSRF,
escaping, validation, audit rows; the real SMTP server receives the mails."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import func, select

from server.consent import record_consent, suppress
from server.db import get_session
from server.engine.jobs import requeue_due
from server.models import BroadcastRecord, Contact, ContactTag, Message, Segment, utcnow

from ..helpers import run_worker, signed_in
from .crm_helpers import SCRIPT, audited, escaped, page_flash, post


@pytest.fixture
def vips(app):
    """5 VIPs (one opted out, one suppressed, one with a hostile name) and 2 others; a segment of the VIPs."""
    with app.app_context():
        session = get_session()
        for n in range(7):
            contact = Contact(email=f"v{n}@example.com", first_name=SCRIPT if n == 0 else f"V{n}")
            session.add(contact)
            session.flush()
            if n < 5:
                session.add(ContactTag(contact_id=contact.id, tag="vip"))
            if n == 1:
                record_consent(session, contact.id, "email", False, "unsubscribe-link")
        suppress(session, app.config["SECRET_KEY"], "email", "v2@example.com", "bounced")
        session.add(Segment(name=SCRIPT, condition='tag == "vip"'))
        session.commit()


def _send(client, **overrides):
    form = {"name": "Spring", "template": "email:welcome", "segment": SCRIPT, "when": "now", **overrides}
    return post(client, "/admin/broadcasts/new", **form)


def _outbox(app) -> dict[str, int]:
    with app.app_context():
        rows = get_session().execute(
            select(Message.status, func.count(Message.id))
            .where(Message.key.startswith("broadcast:"))
            .group_by(Message.status)
        )
        return dict(rows.all())


def _progress(client, broadcast_id: int) -> dict[str, int]:
    text = client.get(f"/admin/broadcasts/{broadcast_id}/progress", headers={"HX-Request": "true"}).get_data(
        as_text=True
    )
    return {k: int(v) for k, v in re.findall(r'<span id="count-(\w+)">(\d+)</span>', text)}


def test_the_audience_counts_members_after_consent_and_suppression(app, vips):
    editor = signed_in(app, "editor")
    page = editor.get("/admin/broadcasts/new").get_data(as_text=True)
    assert '<option value="email:welcome">email: welcome</option>' in page
    escaped(page, SCRIPT)  # the segment's name in the pick list
    preview = post(editor, "/admin/broadcasts/audience", hx=True, template="email:welcome", segment=SCRIPT)
    text = preview.get_data(as_text=True)
    # 5 VIPs: v1 opted out and v2 bounced, so 3 may be reached
    assert preview.status_code == 200 and re.search(r'<strong id="audience-count">3</strong> of 5 member', text)


def test_send_now_progress_equals_the_outbox_and_the_mails_arrive(app, vips, smtp_server):
    editor = signed_in(app, "editor")
    response = _send(editor)
    assert response.status_code == 302, response.get_data(as_text=True)
    broadcast_id = int(response.headers["Location"].rsplit("/", 1)[1])
    page = editor.get(f"/admin/broadcasts/{broadcast_id}").get_data(as_text=True)
    assert "is on its way to 5 member(s)" in page_flash(page)
    assert 'hx-trigger="every 2s"' in page  # polls while queued
    assert _progress(editor, broadcast_id) == {
        "queued": 5,
        "sent": 0,
        "suppressed": 0,
        "failed": 0,
        "cancelled": 0,
        "total": 5,
    }
    run_worker(app)
    assert sorted(m["To"] for m in smtp_server.wait_for(3)) == ["v0@example.com", "v3@example.com", "v4@example.com"]
    outbox = _outbox(app)
    assert outbox == {"sent": 3, "suppressed": 2}
    viewer = signed_in(app, "viewer")
    assert _progress(viewer, broadcast_id) == {
        "queued": 0,
        "sent": 3,
        "suppressed": 2,
        "failed": 0,
        "cancelled": 0,
        "total": 5,
    }
    # the poll also swaps the listed messages in, so their statuses follow the counts
    fragment = viewer.get(f"/admin/broadcasts/{broadcast_id}/progress", headers={"HX-Request": "true"})
    table = fragment.get_data(as_text=True).split('id="broadcast-messages"')[1]
    assert table.startswith(' class="table-wrap"') and 'hx-swap-oob="true"' in table.split(">")[0]
    assert table.count("status-sent") == 3 and table.count("status-suppressed") == 2
    # each message names its contact as the contact list does: by email, linked to the contact
    assert sorted(re.findall(r'<a href="/admin/contacts/\d+">([^<]*)</a>', table)) == [
        f"v{n}@example.com" for n in range(5)
    ]
    done = viewer.get(f"/admin/broadcasts/{broadcast_id}").get_data(as_text=True)
    assert "every 2s" not in done and '<strong id="broadcast-percent">100%</strong>' in done
    listed = done.split('id="broadcast-messages"')[1].split("</table>")[0]
    assert sorted(re.findall(r'<a href="/admin/contacts/\d+">([^<]*)</a>', listed)) == [
        f"v{n}@example.com" for n in range(5)
    ]
    assert "contact #" not in done
    escaped(viewer.get("/admin/broadcasts/").get_data(as_text=True), SCRIPT)
    [entry] = audited(app, "broadcast.sent")
    assert entry.detail["members"] == 5


def test_a_scheduled_broadcast_waits_for_its_time_on_the_engine_clock(app, vips, smtp_server):
    editor = signed_in(app, "editor")
    at = (utcnow() + dt.timedelta(hours=3)).replace(second=0, microsecond=0)
    response = _send(editor, when="later", send_at=at.strftime("%Y-%m-%dT%H:%M"))
    assert response.status_code == 302, response.get_data(as_text=True)
    broadcast_id = int(response.headers["Location"].rsplit("/", 1)[1])
    page = editor.get(f"/admin/broadcasts/{broadcast_id}").get_data(as_text=True)
    assert "is scheduled for" in page_flash(page) and "every 2s" not in page
    with app.app_context():
        requeue_due()  # now: nothing is due
    run_worker(app)
    assert smtp_server.messages == [] and _outbox(app) == {"pending": 5}
    with app.app_context():
        requeue_due(now=int(at.timestamp()) + 1)
    run_worker(app)
    assert len(smtp_server.wait_for(3)) == 3 and _outbox(app) == {"sent": 3, "suppressed": 2}
    [entry] = audited(app, "broadcast.scheduled")
    assert entry.detail["members"] == 5


def test_a_scheduled_broadcast_cancelled_before_its_time_sends_nothing(app, vips, smtp_server):
    editor = signed_in(app, "editor")
    at = (utcnow() + dt.timedelta(hours=3)).replace(second=0, microsecond=0)
    response = _send(editor, when="later", send_at=at.strftime("%Y-%m-%dT%H:%M"))
    broadcast_id = int(response.headers["Location"].rsplit("/", 1)[1])
    page = editor.get(f"/admin/broadcasts/{broadcast_id}").get_data(as_text=True)
    assert "Cancel broadcast" in page and "The 5 message(s) not yet sent will never be sent" in page
    viewer = signed_in(app, "viewer")
    assert "Cancel broadcast" not in viewer.get(f"/admin/broadcasts/{broadcast_id}").get_data(as_text=True)
    assert post(viewer, f"/admin/broadcasts/{broadcast_id}/cancel").status_code == 403
    assert post(editor, f"/admin/broadcasts/{broadcast_id}/cancel", csrf=False).status_code == 400
    assert _outbox(app) == {"pending": 5}
    cancelled = post(editor, f"/admin/broadcasts/{broadcast_id}/cancel")
    assert cancelled.status_code == 302 and cancelled.headers["Location"].endswith(f"/admin/broadcasts/{broadcast_id}")
    page = editor.get(f"/admin/broadcasts/{broadcast_id}").get_data(as_text=True)
    assert "5 message(s) not yet sent will not be sent" in page_flash(page)
    assert "Cancel broadcast" not in page  # nothing is left to cancel
    assert _progress(editor, broadcast_id) == {
        "queued": 0,
        "sent": 0,
        "suppressed": 0,
        "failed": 0,
        "cancelled": 5,
        "total": 5,
    }
    assert "(cancelled)" in editor.get("/admin/broadcasts/").get_data(as_text=True)
    with app.app_context():
        requeue_due(now=int(at.timestamp()) + 1)  # its time comes on the engine's clock
    run_worker(app)
    assert smtp_server.messages == [] and _outbox(app) == {"cancelled": 5}
    [entry] = audited(app, "broadcast.cancelled")
    assert entry.detail["messages"] == 5
    again = post(editor, f"/admin/broadcasts/{broadcast_id}/cancel")
    assert again.status_code == 302
    assert "Nothing to cancel" in page_flash(editor.get(f"/admin/broadcasts/{broadcast_id}").get_data(as_text=True))
    assert len(audited(app, "broadcast.cancelled")) == 1


def test_a_viewer_sees_broadcasts_but_cannot_send(app, vips):
    viewer = signed_in(app, "viewer")
    assert "New broadcast" not in viewer.get("/admin/broadcasts/").get_data(as_text=True)
    assert viewer.get("/admin/broadcasts/new").status_code == 403
    assert _send(viewer).status_code == 403
    assert (
        post(viewer, "/admin/broadcasts/audience", hx=True, template="email:welcome", segment=SCRIPT).status_code == 403
    )
    assert _outbox(app) == {}
    assert _send(signed_in(app, "admin")).status_code == 302


def test_sending_needs_the_csrf_token(app, vips):
    assert _send(signed_in(app, "editor"), csrf=False).status_code == 400
    assert _outbox(app) == {}


def test_bad_input_is_refused_with_clear_errors_and_nothing_queued(app, vips):
    editor = signed_in(app, "editor")
    response = post(
        editor, "/admin/broadcasts/new", template="email:nope", segment="vipz", when="later", send_at="soon"
    )
    text = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Choose a template from the list" in text and "Choose a segment from the list" in text
    assert "Give the time to send as YYYY-MM-DDTHH:MM (UTC)" in text
    past = _send(editor, when="later", send_at="2001-01-01T00:00")
    assert past.status_code == 422 and "That time has passed" in past.get_data(as_text=True)
    with app.app_context():
        assert get_session().scalar(select(func.count(BroadcastRecord.id))) == 0
    assert _outbox(app) == {}


def test_the_page_polls_until_the_results_count_what_was_sent(app, vips, smtp_server):
    # the send job commits its outcomes before its rollup counts them: a poll in between sees 100% sent and results
    # of 0, and must not be the last one, or the results stay at 0 until a reload
    from server.engine.jobs import roll_up_stats
    from server.engine.outbox import deliver

    editor = signed_in(app, "editor")
    broadcast_id = int(_send(editor).headers["Location"].rsplit("/", 1)[1])
    with app.app_context():
        session = get_session()
        ids = list(session.scalars(select(Message.id).where(Message.key.startswith("broadcast:"))))
        deliver(session, app, ids)  # the job, without the rollup that follows it
    assert _outbox(app) == {"sent": 3, "suppressed": 2}

    def fragment() -> str:
        return editor.get(f"/admin/broadcasts/{broadcast_id}/progress", headers={"HX-Request": "true"}).get_data(
            as_text=True
        )

    lagging = fragment()
    assert _progress(editor, broadcast_id)["queued"] == 0 and '<td id="result-sent">0</td>' in lagging
    assert 'hx-trigger="every 2s"' in lagging and 'id="results-counting"' in lagging
    assert 'hx-trigger="every 2s"' in editor.get(f"/admin/broadcasts/{broadcast_id}").get_data(as_text=True)
    with app.app_context():
        roll_up_stats(get_session())
    counted = fragment()
    assert '<td id="result-sent">3</td>' in counted
    assert "every 2s" not in counted and "results-counting" not in counted
    assert "every 2s" not in editor.get(f"/admin/broadcasts/{broadcast_id}").get_data(as_text=True)
