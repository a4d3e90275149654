"""The real Segment and RudderStack Python clients, pointed at a running Nudge (waitress on a real port): their
events arrive, a rule on ``form.submitted`` sends its email, and a retried batch stores nothing twice."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from server.db import get_session
from server.engine.render import save_template
from server.models import Contact, Event

from ..helpers import api_key, load_rules, run_worker
from ..ui.conftest import live_server, ui_port  # noqa: F401  (the app under waitress on a real port)

RULE = 'rule "Demo follow-up"\nwhen form.submitted then\n  send email demo\nend\n'


def _segment(key, host, errors):
    from segment.analytics import Client

    return Client(key, host=host, on_error=lambda exc, batch: errors.append(exc), max_retries=0)


def _rudder(key, host, errors):
    from rudderstack.analytics import Client

    return Client(key, host=host, on_error=lambda exc, batch: errors.append(exc), max_retries=0, gzip=True)


def _posts():
    """Each client's own upload function (what its consumer calls, and calls again on a retry)."""
    from rudderstack.analytics import request as rudder_request
    from segment.analytics import request as segment_request

    return {"segment": segment_request.post, "rudder": rudder_request.post}


@pytest.fixture
def demo_template(app):
    with app.app_context():
        session = get_session()
        save_template(
            session, "email", "demo", {"subject": "Your {{ event.form }} demo", "txt": "Hi {{ contact.first_name }}"}
        )
        session.commit()


@pytest.mark.parametrize("make", [_segment, _rudder], ids=["segment", "rudder"])
def test_a_clients_events_arrive_and_fire_a_rule(app, live_server, smtp_server, demo_template, make):  # noqa: F811
    load_rules(app, RULE)
    errors: list[Exception] = []
    client = make(api_key(app, "ingest"), live_server, errors)
    client.page(anonymous_id="anon-42", name="Pricing", properties={"url": "https://shop.example/pricing"})
    client.identify("user-42", {"email": "dana@example.com", "firstName": "Dana"}, anonymous_id="anon-42")
    client.track("user-42", "Form Submitted", {"form": "Pricing"})
    client.flush()
    client.join()
    assert errors == []
    with app.app_context():
        session = get_session()
        contact = session.scalar(select(Contact).where(Contact.external_id == "user-42"))
        assert (contact.email, contact.first_name) == ("dana@example.com", "Dana")
        names = list(session.scalars(select(Event.name).where(Event.contact_id == contact.id).order_by(Event.id)))
    assert names == ["page.visited", "contact.updated", "form.submitted"]  # the visitor's page view is Dana's
    run_worker(app)
    [mail] = smtp_server.wait_for(1)
    assert mail["To"] == "dana@example.com" and mail["Subject"] == "Your Pricing demo"
    assert "Hi Dana" in mail.get_body(("plain",)).get_content()


@pytest.mark.parametrize("library", ["segment", "rudder"])
def test_a_retried_batch_does_not_double(app, live_server, library):  # noqa: F811
    """The clients retry a batch as it was (same messageIds) when an answer does not come back."""
    post = _posts()[library]
    key = api_key(app, "ingest")
    batch = [
        {"type": "track", "userId": "u-1", "event": "Form Submitted", "messageId": f"{library}-{i}"} for i in range(3)
    ]
    kwargs = {"gzip": True} if library == "rudder" else {}
    assert post(key, host=live_server, batch=batch, **kwargs).status_code == 200
    assert post(key, host=live_server, batch=batch, **kwargs).json() == {"success": True}
    with app.app_context():
        assert len(get_session().scalars(select(Event.id)).all()) == 3
