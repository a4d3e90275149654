"""Ids are never reused: an erased contact's id, outbox keys and signed links never reach the next person."""

import re

from sqlalchemy import select

from server.consent import current_consent
from server.db import get_session
from server.links import preferences_url
from server.models import Contact, Event, Message

from ..helpers import api_key, load_rules, post_event, run_worker


def _path(url):
    return re.sub(r"^https?://[^/]+", "", url)


def _contact(app, email):
    with app.app_context():
        return get_session().scalar(select(Contact).where(Contact.email == email))


def test_after_erasing_the_newest_contact_the_next_ones_get_new_ids_their_mails_and_not_its_links(
    app, client, smtp_server
):
    load_rules(app)
    ingest, admin = api_key(app), {"Authorization": f"Bearer {api_key(app, 'admin')}"}
    post_event(client, ingest, email="first@example.com")
    run_worker(app)
    [welcome] = smtp_server.wait_for(1)
    unsubscribe = re.search(r"Unsubscribe: (\S+)", welcome.get_body(("plain",)).get_content()).group(1)
    first = _contact(app, "first@example.com")
    with app.app_context():
        preferences = preferences_url(first.public_id)
        first_keys = set(get_session().scalars(select(Message.key)))
    assert client.delete(f"/api/v1/contacts/{first.id}", headers=admin).status_code == 200  # the newest contact

    post_event(client, ingest, email="second@example.com")
    run_worker(app)
    post_event(client, ingest, email="third@example.com")
    run_worker(app)
    mails = smtp_server.wait_for(3)
    assert [m["To"] for m in mails] == ["first@example.com", "second@example.com", "third@example.com"]
    second, third = _contact(app, "second@example.com"), _contact(app, "third@example.com")
    assert first.id < second.id < third.id
    with app.app_context():
        session = get_session()
        rows = session.execute(select(Message.key, Message.status, Message.contact_id).order_by(Message.id)).all()
        assert [(status, cid) for _key, status, cid in rows] == [
            ("sent", None),
            ("sent", second.id),
            ("sent", third.id),
        ]
        assert not first_keys & {key for key, _status, cid in rows if cid is not None}

    # the erased person's links, valid for years, reach nobody
    page = client.post(_path(unsubscribe), data={"List-Unsubscribe": "One-Click"})
    assert page.status_code == 200 and "second" not in page.get_data(as_text=True)
    assert client.get(_path(unsubscribe)).status_code == 200  # a neutral page
    assert client.get(_path(preferences)).status_code == 404
    with app.app_context():
        session = get_session()
        assert current_consent(session, second.id, "email") is None
        assert session.scalars(select(Event.name).where(Event.name.like("%unsubscribed"))).all() == []
    post_event(client, ingest, email="second@example.com")  # and the second contact is still mailed
    run_worker(app)
    assert smtp_server.wait_for(4)[3]["To"] == "second@example.com"


def test_an_erased_contacts_unsubscribe_and_preference_links_change_nothing_on_the_next_contact(app, client):
    from server.links import unsubscribe_url

    admin = {"Authorization": f"Bearer {api_key(app, 'admin')}"}
    gone = client.post("/api/v1/contacts", json={"email": "gone@example.com"}, headers=admin).json
    with app.app_context():
        public_id = get_session().get(Contact, gone["id"]).public_id
        unsubscribe, preferences = unsubscribe_url(public_id, "email", "k"), preferences_url(public_id)
    assert client.delete(f"/api/v1/contacts/{gone['id']}", headers=admin).status_code == 200
    new = client.post("/api/v1/contacts", json={"email": "new@example.com"}, headers=admin).json
    assert new["id"] != gone["id"]

    assert client.get(_path(preferences)).status_code == 404
    assert "n***@example.com" not in client.get(_path(unsubscribe)).get_data(as_text=True)
    assert client.post(_path(unsubscribe), data={"List-Unsubscribe": "One-Click"}).status_code == 200
    with app.app_context():
        assert current_consent(get_session(), new["id"], "email") is None
        assert get_session().scalars(select(Event.name).where(Event.name.like("%unsubscribed"))).all() == []
