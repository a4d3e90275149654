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
    assert response.status_code == 303 and response.headers["Location"] == "/f/newsletter/thanks"
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


def test_a_confirmation_template_made_in_templates_mails_its_link_and_one_without_it_is_refused(
    app, client, smtp_server
):
    """A form's own confirmation template may show ``{{ confirm_url }}`` (it was refused as an unknown name, so no
    stored template could confirm anyone); a double opt-in form naming one that never shows it is refused."""
    from ..helpers import api_key

    headers = {"Authorization": f"Bearer {api_key(app, 'admin')}"}
    ours = {
        "subject": "One click, {{ contact.first_name }}",
        "html": '<p><a href="{{ confirm_url }}">Yes, sign me up</a></p>',
        "txt": "Yes, sign me up: {{ confirm_url }}",
    }
    made = client.post(
        "/api/v1/templates", json={"channel": "email", "name": "our_confirm", "parts": ours}, headers=headers
    )
    assert made.status_code == 201, made.json
    linkless = {"subject": "Confirm", "html": "<p>Thanks!</p>", "txt": "Thanks!"}
    made = client.post(
        "/api/v1/templates", json={"channel": "email", "name": "no_link", "parts": linkless}, headers=headers
    )
    assert made.status_code == 201, made.json
    form = {"slug": "club", "wording": "Yes please", "fields": ["first_name"], "double_opt_in": True}
    refused = client.post("/api/v1/forms", json={**form, "confirm_template": "no_link"}, headers=headers)
    assert refused.status_code == 422 and refused.json["field"] == "confirm_template"
    assert "never shows {{ confirm_url }}" in refused.json["detail"]
    assert (
        client.post("/api/v1/forms", json={**form, "confirm_template": "our_confirm"}, headers=headers).status_code
        == 201
    )
    signed = client.post("/f/club", data={"email": "kim@example.com", "first_name": "Kim", "consent": "yes"})
    assert signed.status_code == 303
    run_worker(app)
    [raw] = smtp_server.wait_for(1) and smtp_server.raw
    assert b"Subject: One click, Kim" in raw
    [msg] = smtp_server.messages
    link = re.search(r"Yes, sign me up: (\S+)", msg.get_body(("plain",)).get_content()).group(1)
    path = re.sub(r"^https?://[^/]+", "", link)
    assert path.startswith("/f/confirm/") and client.post(path).status_code == 200
    with app.app_context():
        from server.consent import current_consent

        kim = get_session().query(Contact).filter_by(email="kim@example.com").one()
        assert current_consent(get_session(), kim.id, "email") == "granted"
