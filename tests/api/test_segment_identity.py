"""Which contact an incoming identity names, driven as a careless or hostile integrator would drive it: over real
HTTP against the app under waitress, with the Segment client where it can say what is meant.

An email that belongs to one user never moves to another user's id, a browser shared by two users does not merge
them, ids are read alike by every message kind, and concurrent identifies of one new user make one contact."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import select

from server.db import get_session
from server.models import AnonymousId, Contact, Event

from ..helpers import api_key
from ..ui.conftest import live_server, ui_port  # noqa: F401  (the app under waitress on a real port)


@pytest.fixture
def send(app, live_server):  # noqa: F811
    """``send(path, body, key=…)``: one POST to the live server with the write key as the HTTP Basic user."""
    key = api_key(app, "ingest")

    def post(path, body, *, bearer=False):
        if bearer:
            return requests.post(live_server + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        return requests.post(live_server + path, json=body, auth=(key, ""), timeout=30)

    post.key, post.base = key, live_server
    return post


@pytest.fixture
def segment(app, live_server):  # noqa: F811
    """The official Segment client pointed at the live server; ``segment.errors`` collects what it failed to send."""
    from segment.analytics import Client

    errors: list[Exception] = []
    client = Client(
        api_key(app, "ingest"), host=live_server, on_error=lambda exc, _b: errors.append(exc), max_retries=0
    )
    client.errors = errors
    yield client
    client.shutdown()


def _sent(client) -> None:
    """Wait until the client has sent what it queued (its consumer keeps running: ``join`` would stop it)."""
    client.flush()


def _people(app) -> list[tuple[str | None, str | None]]:
    """(external_id, email) of every contact, in id order."""
    with app.app_context():
        return [
            tuple(row) for row in get_session().execute(select(Contact.external_id, Contact.email).order_by(Contact.id))
        ]


def _events_of(app, external_id: str) -> list[str]:
    with app.app_context():
        session = get_session()
        contact_id = session.scalar(select(Contact.id).where(Contact.external_id == external_id))
        return list(session.scalars(select(Event.name).where(Event.contact_id == contact_id).order_by(Event.id)))


def _owner_of(app, anonymous_id: str) -> str | None:
    with app.app_context():
        session = get_session()
        return session.scalar(
            select(Contact.external_id)
            .join(AnonymousId, AnonymousId.contact_id == Contact.id)
            .where(AnonymousId.anonymous_id == anonymous_id)
        )


# --- an email that is another user's ---


def test_identify_with_another_users_email_does_not_take_over_their_contact(app, send):
    assert send("/v1/identify", {"userId": "u-1", "traits": {"email": "ana@example.com"}}).status_code == 200
    response = send("/v1/identify", {"userId": "u-2", "traits": {"email": "ANA@example.com"}})
    assert response.status_code == 400
    assert response.json()["field"] == "traits.email"
    assert "already belongs to contact" in response.json()["detail"]
    assert _people(app) == [("u-1", "ana@example.com")]  # u-1 is still u-1: a later track of u-1 finds Ana
    assert send("/v1/track", {"userId": "u-1", "event": "Order Paid"}).status_code == 200
    assert _events_of(app, "u-1")[-1] == "order.paid"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/contacts/upsert", {"external_id": "u-2", "email": "ana@example.com"}, "email"),
        (
            "/api/v1/events",
            {"contact": {"external_id": "u-2", "email": "ana@example.com"}, "event": "order.paid"},
            "contact.email",
        ),
        (
            "/api/v1/events/batch",
            {"events": [{"contact": {"external_id": "u-2", "email": "ana@example.com"}, "event": "order.paid"}]},
            "events[0].contact.email",
        ),
    ],
)
def test_nudges_api_refuses_to_move_another_users_email_to_a_new_external_id(app, send, path, body, field):
    assert send("/api/v1/contacts/upsert", {"external_id": "u-1", "email": "ana@example.com"}, bearer=True).ok
    response = send(path, body, bearer=True)
    assert response.status_code == 409, response.text
    assert response.json()["field"] == field
    assert _people(app) == [("u-1", "ana@example.com")]


def test_an_email_only_contact_takes_the_user_id_of_its_first_identify(app, send):
    """An imported contact (an email, no external id) is the user who identifies with its email: not a conflict."""
    assert send("/api/v1/contacts/upsert", {"email": "ana@example.com"}, bearer=True).ok
    assert send("/v1/identify", {"userId": "u-1", "traits": {"email": "ana@example.com"}}).status_code == 200
    assert send("/api/v1/contacts/upsert", {"external_id": "u-1", "email": "ana@example.com"}, bearer=True).ok
    assert _people(app) == [("u-1", "ana@example.com")]


# --- a browser shared by two users (one anonymousId, never reset) ---


@pytest.mark.parametrize("second_known", [False, True], ids=["second-user-new", "second-user-known"])
def test_two_users_of_one_browser_stay_two_contacts(app, send, segment, second_known):
    if second_known:
        assert send("/v1/identify", {"userId": "u-2", "traits": {"email": "bo@example.com"}}).status_code == 200
    segment.identify("u-1", {"email": "ana@example.com"}, anonymous_id="browser-1")
    segment.track("u-1", "Order Paid", anonymous_id="browser-1")
    _sent(segment)
    segment.identify("u-2", {"email": "bo@example.com"}, anonymous_id="browser-1")
    segment.page(anonymous_id="browser-1", name="Pricing")
    _sent(segment)
    assert segment.errors == []
    assert sorted(_people(app)) == [("u-1", "ana@example.com"), ("u-2", "bo@example.com")]
    assert "order.paid" in _events_of(app, "u-1") and "order.paid" not in _events_of(app, "u-2")
    assert _owner_of(app, "browser-1") == "u-2"  # the browser is the latest user's from now on
    assert _events_of(app, "u-2")[-1] == "page.visited"


def test_an_email_only_identify_on_a_users_browser_does_not_merge_two_users(app, send):
    assert send("/v1/identify", {"userId": "u-1", "anonymousId": "browser-1"}).status_code == 200
    assert send("/v1/identify", {"userId": "u-2", "traits": {"email": "bo@example.com"}}).status_code == 200
    body = {"anonymousId": "browser-1", "traits": {"email": "bo@example.com"}}
    assert send("/v1/identify", body).status_code == 200
    assert sorted(_people(app)) == [("u-1", None), ("u-2", "bo@example.com")]


def test_a_visitor_is_still_merged_into_the_user_who_identifies(app, send):
    """What the shared-browser guard must not stop: a visitor's history becomes the identified user's."""
    assert send("/v1/page", {"anonymousId": "browser-1", "name": "Pricing"}).status_code == 200
    assert send("/v1/identify", {"anonymousId": "browser-1", "traits": {"email": "ana@example.com"}}).ok
    assert send("/v1/identify", {"userId": "u-1", "anonymousId": "browser-1"}).status_code == 200
    assert _people(app) == [("u-1", "ana@example.com")]
    assert _events_of(app, "u-1")[0] == "page.visited"


# --- ids read alike by every kind of message ---


def test_an_alias_reads_a_user_id_as_track_and_identify_do(app, send):
    """``" u-9 "`` is user ``u-9`` to a track (external ids are trimmed): an alias must not make a second user."""
    assert send("/v1/page", {"anonymousId": "anon-7", "name": "Pricing"}).status_code == 200
    assert send("/v1/alias", {"previousId": "anon-7", "userId": " u-9 "}).status_code == 200
    assert send("/v1/track", {"userId": "u-9", "event": "Order Paid"}).status_code == 200
    assert send("/v1/identify", {"userId": "u-9 ", "traits": {"email": "nia@example.com"}}).status_code == 200
    assert _people(app) == [("u-9", "nia@example.com")]
    assert _events_of(app, "u-9") == ["page.visited", "order.paid", "contact.updated"]


def test_an_alias_of_a_new_user_onto_a_previous_user_id_with_spaces_finds_it(app, send):
    assert send("/v1/identify", {"userId": "u-1", "traits": {"email": "ana@example.com"}}).status_code == 200
    assert send("/v1/alias", {"previousId": " u-1", "userId": "u-2"}).status_code == 200
    assert _people(app) == [("u-2", "ana@example.com")]


def test_a_number_and_its_text_name_one_user_in_every_kind(app, send):
    assert send("/v1/identify", {"userId": 42, "traits": {"email": "ana@example.com"}}).status_code == 200
    assert send("/v1/track", {"userId": "42", "event": "Order Paid"}).status_code == 200
    assert send("/v1/alias", {"previousId": "anon-1", "userId": 42}).status_code == 200
    assert send("/api/v1/events", {"contact": {"external_id": "42"}, "event": "x.y"}, bearer=True).ok
    assert _people(app) == [("42", "ana@example.com")]


# --- many at once ---


def test_concurrent_identifies_of_one_new_user_make_one_contact(app, send):
    start = threading.Barrier(8)

    def identify(i):
        start.wait()
        body = {"userId": "u-new", "anonymousId": f"anon-{i}", "traits": {"email": "new@example.com"}}
        return send("/v1/identify", body).status_code

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(identify, range(8))) == [200] * 8
    assert _people(app) == [("u-new", "new@example.com")]
    assert _events_of(app, "u-new").count("contact.created") == 1
    assert {_owner_of(app, f"anon-{i}") for i in range(8)} == {"u-new"}


# --- after an erasure ---


def test_an_erased_users_anonymous_id_and_history_go_with_them_and_a_new_identify_starts_afresh(app, send):
    assert send("/v1/page", {"anonymousId": "browser-1", "name": "Pricing"}).status_code == 200
    body = {"userId": "u-1", "anonymousId": "browser-1", "traits": {"email": "ana@example.com"}}
    assert send("/v1/identify", body).status_code == 200
    with app.app_context():
        erased = get_session().scalar(select(Contact.id).where(Contact.external_id == "u-1"))
    admin = api_key(app, "admin")
    base = send.base
    assert requests.delete(f"{base}/api/v1/contacts/{erased}", headers={"Authorization": f"Bearer {admin}"}).ok
    assert _owner_of(app, "browser-1") is None and _people(app) == []
    assert send("/v1/page", {"anonymousId": "browser-1", "name": "Home"}).status_code == 200
    assert send("/v1/identify", body).status_code == 200  # a new contact (documented: its address stays suppressed)
    assert _people(app) == [("u-1", "ana@example.com")]
    assert _events_of(app, "u-1") == ["page.visited", "contact.updated"]  # today's visit only: nothing came back
