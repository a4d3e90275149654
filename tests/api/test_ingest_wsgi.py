"""The lean WSGI path of event posts (issue #12, point 1): it answers plain posts without Flask, and every answer,
good or bad, is the one Flask's path gives, byte for byte."""

from __future__ import annotations

import json
import re

import pytest
from flask import request_started
from sqlalchemy import func, select, update
from werkzeug.test import Client

from server.db import get_session
from server.engine.groups import _write_group
from server.engine.ingest import NotAdmitted, prepare_events
from server.models import ApiKey, Event, IdempotencyRecord, utcnow

from ..helpers import api_key

EVENT = {"contact": {"email": "a@example.com"}, "event": "form.submitted", "props": {"form": "newsletter"}}
BATCH = {"events": [EVENT, {**EVENT, "contact": {"external_id": "crm-1"}}]}


def _events(app) -> int:
    with app.app_context():
        return get_session().scalar(select(func.count(Event.id)))


def _flask_requests(app) -> list[str]:
    """The paths Flask dispatched from now on (its ``request_started`` signal)."""
    seen: list[str] = []

    def started(sender, **_extra):
        from flask import request

        seen.append(request.path)

    request_started.connect(started, app, weak=False)
    return seen


def _answer(response) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body, with the ids (which differ between two stored posts) blanked out."""
    body = re.sub(rb"\d+", b"N", response.get_data())
    headers = [(name, value) for name, value in response.headers if name != "Content-Length"]
    assert int(response.headers["Content-Length"]) == len(response.get_data())
    return response.status_code, headers, body


def _key_id(app, key: str) -> int:
    with app.app_context():
        return get_session().scalar(select(ApiKey.id).where(ApiKey.prefix == key.split("_")[2]))


def _used_key(app, client, scope: str = "ingest") -> str:
    """A key whose use is noted (a fresh key's first request goes through Flask to note it)."""
    key = api_key(app, scope)
    assert client.post("/api/v1/events", json=EVENT, headers={"Authorization": f"Bearer {key}"}).status_code == 202
    return key


def test_plain_event_posts_are_answered_without_flask_and_stored(app, client):
    key = _used_key(app, client)
    flask_saw = _flask_requests(app)
    before = _events(app)
    single = client.post("/api/v1/events", json=EVENT, headers={"Authorization": f"Bearer {key}"})
    batch = client.post("/api/v1/events/batch", json=BATCH, headers={"Authorization": f"Bearer {key}"})
    assert single.status_code == 202 and batch.status_code == 202
    assert batch.json["count"] == 2 and single.json["status"] == "accepted"
    assert _events(app) == before + 3
    assert flask_saw == []  # neither went through Flask's request handling
    client.get("/api/v1/events", headers={"Authorization": f"Bearer {key}"})
    assert flask_saw == ["/api/v1/events"]  # anything else does


BAD = [
    ("single good", "/api/v1/events", EVENT, {}),
    ("batch good", "/api/v1/events/batch", BATCH, {}),
    ("a named contact", "/api/v1/events", {**EVENT, "contact": {"email": "b@example.com", "first_name": "B"}}, {}),
    ("admin key", "/api/v1/events", EVENT, {"key": "admin"}),
    ("not JSON", "/api/v1/events", b"{nope", {}),
    ("NaN", "/api/v1/events", b'{"contact": {"email": "a@example.com"}, "event": "a.b", "props": {"x": NaN}}', {}),
    ("a wrong field", "/api/v1/events", {**EVENT, "event": "Not A Name"}, {}),
    ("an unknown field", "/api/v1/events", {**EVENT, "extra": 1}, {}),
    ("a bad email", "/api/v1/events", {**EVENT, "contact": {"email": "nope"}}, {}),
    ("a bad time", "/api/v1/events", {**EVENT, "occurred_at": "2026-05-01T12:00:00"}, {}),
    ("a bad batch item", "/api/v1/events/batch", {"events": [EVENT, {**EVENT, "event": 3}]}, {}),
    ("an empty batch", "/api/v1/events/batch", {"events": []}, {}),
    ("no key", "/api/v1/events", EVENT, {"auth": ""}),
    ("an unknown key", "/api/v1/events", EVENT, {"auth": "Bearer nudge_live_abcdefgh_0123456789"}),
    ("another scheme", "/api/v1/events", EVENT, {"auth": "Basic eDp5"}),
    ("a query", "/api/v1/events?x=1", EVENT, {}),
    ("text/plain", "/api/v1/events", EVENT, {"content_type": "text/plain"}),
    ("too large", "/api/v1/events", {**EVENT, "props": {"x": "y" * 300_000}}, {}),
    (
        "lone surrogate",
        "/api/v1/events",
        b'{"contact": {"email": "a@example.com"}, "event": "a.b", "props": {"x": "\\ud800"}}',
        {},
    ),
    ("keyed", "/api/v1/events", EVENT, {"idempotency": "new"}),
    ("keyed batch", "/api/v1/events/batch", BATCH, {"idempotency": "new"}),
    ("keyed again", "/api/v1/events", EVENT, {"idempotency": "again"}),
    ("keyed again, another body", "/api/v1/events", EVENT, {"idempotency": "reused"}),
    ("keyed again, another endpoint", "/api/v1/events/batch", BATCH, {"idempotency": "elsewhere"}),
    ("keyed, a malformed key", "/api/v1/events", EVENT, {"idempotency": "with space"}),
    ("keyed, a bad email", "/api/v1/events", {**EVENT, "contact": {"email": "nope"}}, {"idempotency": "new"}),
]


@pytest.mark.parametrize(("what", "path", "body", "options"), BAD, ids=[case[0] for case in BAD])
def test_the_lean_path_and_flask_answer_alike(app, client, what, path, body, options):
    keys = {"ingest": _used_key(app, client), "admin": _used_key(app, client, "admin")}
    auth = options.get("auth", f"Bearer {keys[options.get('key', 'ingest')]}")
    headers = {"Authorization": auth} if auth else {}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    content_type = options.get("content_type", "application/json")
    lean, flask = Client(app.wsgi_app), Client(app.wsgi_app.next)
    keyed = options.get("idempotency")
    earlier = {"again": (path, data), "reused": (path, json.dumps({**EVENT, "event": "other.event"}).encode())}
    earlier["elsewhere"] = ("/api/v1/events", json.dumps(EVENT).encode())
    if keyed in earlier:  # the key was used before: for this very request, or another body, or another endpoint
        first_path, first_data = earlier[keyed]
        key = {**headers, "Idempotency-Key": keyed}
        assert flask.post(first_path, data=first_data, headers=key, content_type=content_type).status_code == 202
    before = _events(app)
    answers = []
    for n, c in enumerate((lean, flask)):  # a new key is each one's own
        key = {"new": f"new-{n}", None: None}.get(keyed, keyed)
        sent = {**headers, "Idempotency-Key": key} if key else headers
        answers.append(c.post(path, data=data, headers=sent, content_type=content_type))
    assert _answer(answers[0]) == _answer(answers[1])
    stored = _events(app) - before
    count = len(body["events"]) if isinstance(body, dict) and "events" in body else 1
    assert stored == (2 * count if answers[0].status_code == 202 and keyed != "again" else 0)
    if keyed == "again":
        assert answers[0].headers["Idempotent-Replayed"] == "true"
    if keyed in ("reused", "elsewhere", "with space"):
        assert answers[0].status_code == 422 and answers[0].json["field"] == "Idempotency-Key"


@pytest.mark.parametrize("contact", [{"email": "a@example.com"}, {"email": "b@example.com", "first_name": "B"}])
def test_a_revoked_key_is_refused_by_the_next_post(app, client, contact):
    key = _used_key(app, client)
    with app.app_context():
        session = get_session()
        session.execute(update(ApiKey).where(ApiKey.prefix == key.split("_")[2]).values(revoked_at=utcnow()))
        session.commit()
    before = _events(app)
    body = {**EVENT, "contact": contact}
    refused = Client(app.wsgi_app).post("/api/v1/events", json=body, headers={"Authorization": f"Bearer {key}"})
    assert refused.status_code == 401 and refused.json["title"] == "API key revoked"
    assert _events(app) == before


def test_a_batch_key_revoked_just_after_it_stored_is_refused_by_the_next_batch(app, client):
    """Its body is read without a look-up first (the key let a request store within ADMITTED_FOR), and the look-up
    in the write's transaction refuses it."""
    key = _used_key(app, client)
    lean = Client(app.wsgi_app)
    assert lean.post("/api/v1/events/batch", json=BATCH, headers={"Authorization": f"Bearer {key}"}).status_code == 202
    assert app.wsgi_app._admitted_lately(key)
    with app.app_context():
        session = get_session()
        session.execute(update(ApiKey).where(ApiKey.prefix == key.split("_")[2]).values(revoked_at=utcnow()))
        session.commit()
    before = _events(app)
    refused = lean.post("/api/v1/events/batch", json=BATCH, headers={"Authorization": f"Bearer {key}"})
    assert refused.status_code == 401 and refused.json["title"] == "API key revoked"
    assert _events(app) == before
    assert not app.wsgi_app._admitted_lately(api_key(app, "ingest"))  # another key is looked up before its body


@pytest.mark.parametrize("contact", [{"email": "a@example.com"}, {"email": "b@example.com", "first_name": "B"}])
def test_a_group_stores_only_the_requests_it_admits(app, contact):
    """Requests written together are each admitted in the write's transaction (their key): a refused one stores
    nothing and the others are stored (plain contacts on the ingest's own connection, others through the session)."""
    with app.app_context():
        session = get_session()
        prepared = prepare_events(session, [{**EVENT, "contact": contact}], prefix=lambda _i: "")
        session.commit()
        before = _events(app)
        outcomes = _write_group(
            [prepared._replace(admit=lambda _cursor, _engine, ok=ok: ok) for ok in (True, False, True)]
        )
    assert isinstance(outcomes[1], NotAdmitted)
    assert [len(outcome) for outcome in (outcomes[0], outcomes[2])] == [1, 1]
    assert _events(app) == before + 2


def test_an_idempotent_post_is_stored_and_replayed_without_flask(app, client):
    key = _used_key(app, client)
    flask_saw = _flask_requests(app)
    before = _events(app)
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "k-1"}
    first = client.post("/api/v1/events", json=EVENT, headers=headers)
    again = client.post("/api/v1/events", json=EVENT, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true" and again.json == first.json
    assert "Idempotent-Replayed" not in first.headers and _events(app) == before + 1
    assert flask_saw == []
    with app.app_context():  # stored under the key's own API key, as Flask's path stores it
        record = get_session().scalars(select(IdempotencyRecord)).one()
        assert (record.api_key_id, record.endpoint) == (_key_id(app, key), "POST /api/v1/events")


def test_a_request_hook_this_path_does_not_know_sends_every_post_through_flask(app, client):
    @app.after_request
    def stamp(response):  # a plugin's hook, say
        response.headers["X-Stamp"] = "yes"
        return response

    key = _used_key(app, client)
    answer = client.post("/api/v1/events", json=EVENT, headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 202 and answer.headers["X-Stamp"] == "yes"
    assert app.wsgi_app.active is False


def test_custom_fields_are_checked_against_their_definitions_on_the_lean_path(app, client):
    """A post naming custom fields reads their definitions (the one case the lean path sets up a session for)."""
    from server.models import Contact, FieldDefinition

    with app.app_context():
        get_session().add(FieldDefinition(name="plan", type="string"))
        get_session().commit()
    key = _used_key(app, client)
    flask_saw = _flask_requests(app)
    headers = {"Authorization": f"Bearer {key}"}
    named = {**EVENT, "contact": {"email": "f@example.com", "fields": {"plan": "pro"}}}
    assert client.post("/api/v1/events", json=named, headers=headers).status_code == 202
    assert flask_saw == []
    with app.app_context():
        contact = get_session().scalars(select(Contact).where(Contact.email == "f@example.com")).one()
        assert contact.fields == {"plan": "pro"}
    undefined = {**EVENT, "contact": {"email": "g@example.com", "fields": {"tier": "gold"}}}
    response = client.post("/api/v1/events", json=undefined, headers=headers)
    assert response.status_code == 422 and "contact.fields.tier" in response.get_data(as_text=True)
    assert flask_saw == ["/api/v1/events"]  # the error is Flask's path's to say
