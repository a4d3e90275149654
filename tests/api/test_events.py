import uuid

import pytest
from sqlalchemy import func, select

from server.db import get_session
from server.models import Contact, Event, IdempotencyRecord


def _event(i, email=None, **extra):
    return {"contact": {"email": email or f"user{i}@example.com"}, "event": "page.visited", "props": {"i": i}, **extra}


def _count(app, model):
    with app.app_context():
        return get_session().scalar(select(func.count(model.id)))


def test_batch_stores_all_events(app, ingest):
    body = {"events": [_event(i, email=f"u{i % 3}@example.com") for i in range(10)]}
    response = ingest.post("/events/batch", json=body)
    assert response.status_code == 202, response.json
    assert response.json["count"] == 10 and len(set(response.json["contact_ids"])) == 3
    assert _count(app, Event) == 10 and _count(app, Contact) == 3


def test_batch_is_all_or_nothing(app, ingest):
    body = {"events": [_event(i) for i in range(5)]}
    body["events"][3]["contact"]["email"] = "not an address"
    response = ingest.post("/events/batch", json=body)
    assert response.status_code == 422
    assert response.json["field"] == "events[3].contact.email"
    assert _count(app, Event) == 0 and _count(app, Contact) == 0


def test_batch_of_1001_is_refused(app, ingest):
    response = ingest.post("/events/batch", json={"events": [_event(i) for i in range(1001)]})
    assert response.status_code == 422 and response.json["field"] == "events"
    assert "at most 1000" in response.json["detail"]
    assert _count(app, Event) == 0


def test_batch_of_1000_is_accepted(app, ingest):
    response = ingest.post("/events/batch", json={"events": [_event(i, email="same@example.com") for i in range(1000)]})
    assert response.status_code == 202 and response.json["count"] == 1000


def test_idempotency_key_replays_the_stored_answer(app, ingest):
    key = str(uuid.uuid4())
    first = ingest.post("/events", json=_event(1), headers={"Idempotency-Key": key})
    again = ingest.post("/events", json=_event(1), headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 202
    assert again.json == first.json and again.headers["Idempotent-Replayed"] == "true"
    assert _count(app, Event) == 1


def test_idempotency_key_with_another_body_is_422(app, ingest):
    key = str(uuid.uuid4())
    ingest.post("/events/batch", json={"events": [_event(1)]}, headers={"Idempotency-Key": key})
    other = ingest.post("/events/batch", json={"events": [_event(2)]}, headers={"Idempotency-Key": key})
    assert other.status_code == 422 and other.json["field"] == "Idempotency-Key"
    elsewhere = ingest.post("/events", json=_event(1), headers={"Idempotency-Key": key})
    assert elsewhere.status_code == 422
    assert _count(app, Event) == 1


def test_an_idempotency_key_is_new_again_after_24_hours(app, ingest, clock):
    key = str(uuid.uuid4())
    assert ingest.post("/events", json=_event(1), headers={"Idempotency-Key": key}).status_code == 202
    clock.advance(24 * 3600 - 60)
    assert ingest.post("/events", json=_event(2), headers={"Idempotency-Key": key}).status_code == 422  # still kept
    clock.advance(120)
    later = ingest.post("/events", json=_event(2), headers={"Idempotency-Key": key})
    assert later.status_code == 202 and "Idempotent-Replayed" not in later.headers
    assert _count(app, Event) == 2 and _count(app, IdempotencyRecord) == 1  # the expired answer gave way


def test_failed_request_stores_no_key(app, ingest):
    key = "retry-me"
    bad = ingest.post("/events", json=_event(1, email="bad"), headers={"Idempotency-Key": key})
    assert bad.status_code == 422
    assert _count(app, IdempotencyRecord) == 0
    assert ingest.post("/events", json=_event(1), headers={"Idempotency-Key": key}).status_code == 202


def test_keys_are_per_api_key(app, client, ingest):
    from ..helpers import api_key
    from .conftest import Api

    other = Api(client, api_key(app, "ingest"))
    assert ingest.post("/events", json=_event(1), headers={"Idempotency-Key": "k"}).status_code == 202
    assert other.post("/events", json=_event(2), headers={"Idempotency-Key": "k"}).status_code == 202
    assert _count(app, Event) == 2


@pytest.mark.parametrize("key", ["", "x" * 256, "with space", "naïve"])
def test_malformed_idempotency_key_is_422(ingest, key):
    response = ingest.post("/events", json=_event(1), headers={"Idempotency-Key": key})
    assert response.status_code == 422 and response.json["field"] == "Idempotency-Key"


def test_events_are_listed_newest_first(api):
    for i in range(3):
        api.post("/events", json=_event(i))
    names = [e["props"]["i"] for e in api.get("/events").json["data"]]
    assert names == [2, 1, 0]


def test_event_with_contact_attributes_updates_the_contact(app, ingest):
    body = {
        "contact": {"email": "z@example.com", "first_name": "Zoe", "phone": "+1 202 555 0143"},
        "event": "signup.completed",
    }
    assert ingest.post("/events", json=body).status_code == 202
    with app.app_context():
        contact = get_session().scalar(select(Contact))
        assert contact.first_name == "Zoe" and contact.phone == "+12025550143"
