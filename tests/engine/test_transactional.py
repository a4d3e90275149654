"""A message the contact asked for (double opt-in confirmation) is delivered, even after an earlier opt-out."""

import re

from server.consent import record_consent
from server.db import get_session
from server.models import Contact

from ..helpers import run_worker
from ..web.test_forms import make_form


def test_confirmation_mail_arrives_with_its_link_even_after_an_opt_out(app, client, smtp_server):
    with app.app_context():
        session = get_session()
        old = Contact(email="back@example.com", fields={})
        session.add(old)
        session.flush()
        record_consent(session, old.id, "email", False, "unsubscribe-link")
        session.commit()
    make_form(app)
    response = client.post("/f/newsletter", data={"email": "back@example.com", "consent": "yes"})
    assert response.status_code == 200
    run_worker(app)
    [msg] = smtp_server.wait_for(1)
    assert msg["Subject"] == "Please confirm your subscription"
    body = msg.get_body(("plain",)).get_content()
    link = re.search(r"https?://\S+", body).group(0)
    assert "/f/" in link or "confirm" in link
    assert msg["List-Unsubscribe"] is None  # not marketing: no unsubscribe header demanded


def test_a_bounced_address_gets_no_confirmation(app, client, smtp_server):
    from server.consent import suppress

    with app.app_context():
        session = get_session()
        suppress(session, app.config["SECRET_KEY"], "email", "gone@example.com", "bounced")
        session.commit()
    make_form(app)
    client.post("/f/newsletter", data={"email": "gone@example.com", "consent": "yes"})
    run_worker(app)
    assert smtp_server.messages == []
