"""Bad input gets a clear 4xx naming the field, and nothing is half-written."""

import pytest
from sqlalchemy import func, select

from server.db import get_session
from server.models import AuditEntry, Contact, Event, Note, Task, Template

MODELS = (Contact, Event, Note, Task, Template, AuditEntry)


def _counts(app):
    with app.app_context():
        session = get_session()
        return {m.__name__: session.scalar(select(func.count()).select_from(m)) for m in MODELS}


@pytest.mark.parametrize(
    "method,path,body,status,field",
    [
        # unknown fields and wrong types
        ("POST", "/contacts", {"email": "a@example.com", "is_admin": True}, 422, "is_admin"),
        ("POST", "/contacts", {"email": 42}, 422, "email"),
        ("POST", "/contacts", {"email": "a@example.com", "score": "high"}, 422, "score"),
        ("POST", "/contacts", {"email": "a@example.com", "score": 2**40}, 422, "score"),
        ("POST", "/contacts", {"email": "a@example.com", "tags": "vip"}, 422, "tags"),
        ("POST", "/contacts", {"email": "a@example.com", "tags": [""]}, 422, "tags[0]"),
        ("POST", "/contacts", {"email": "a@example.com", "fields": []}, 422, "fields"),
        ("POST", "/contacts", [{"email": "a@example.com"}], 422, ""),
        # bad emails, phones and other values
        ("POST", "/contacts", {"email": "not-an-address"}, 422, "email"),
        ("POST", "/contacts", {"email": "a@example.com\u0000"}, 422, "email"),
        ("POST", "/contacts", {"email": "a@example.com", "phone": "12"}, 422, "phone"),
        ("POST", "/contacts", {"email": "a@example.com", "phone": "030 123456"}, 422, "phone"),
        ("POST", "/contacts", {"email": "a@example.com", "timezone": "Mars/Olympus"}, 422, "timezone"),
        ("POST", "/contacts", {"email": "a@example.com", "locale": "english please"}, 422, "locale"),
        ("POST", "/contacts", {"first_name": "No identity"}, 422, "email"),
        # events
        (
            "POST",
            "/events",
            {"contact": {"email": "a@example.com"}, "event": "x.y", "props": {"a": "\u0000"}},
            422,
            "props.a",
        ),
        (
            "POST",
            "/events",
            {"contact": {"email": "a@example.com", "phone": "nope"}, "event": "x.y"},
            422,
            "contact.phone",
        ),
        (
            "POST",
            "/events",
            {"contact": {"email": "a@example.com", "shoe_size": 44}, "event": "x.y"},
            422,
            "contact.shoe_size",
        ),
        ("POST", "/events/batch", {"events": []}, 422, "events"),
        (
            "POST",
            "/events/batch",
            {"events": [{"contact": {"email": "a@example.com"}, "event": "x.y"}], "extra": 1},
            422,
            "extra",
        ),
        # tasks, notes, templates
        ("POST", "/tasks", {"text": ""}, 422, "text"),
        ("POST", "/tasks", {"text": "call", "due_at": "tomorrow"}, 422, "due_at"),
        ("POST", "/tasks", {"text": "call", "due_at": "2026-05-01T10:00:00"}, 422, "due_at"),
        ("POST", "/tasks", {"text": "call", "contact_id": 999999}, 404, None),
        ("POST", "/tasks", {"text": "call", "status": "maybe"}, 422, "status"),
        (
            "POST",
            "/templates",
            {"channel": "email", "name": "w", "parts": {"subject": "Hi {{ contact.first_name ", "txt": "x"}},
            422,
            "parts.subject",
        ),
        ("POST", "/templates", {"channel": "email", "name": "../etc/passwd", "parts": {"subject": "x"}}, 422, "name"),
        ("POST", "/fields", {"name": "Bad Name", "type": "string"}, 422, "name"),
        ("POST", "/fields", {"name": "ok", "type": "json"}, 422, "type"),
    ],
)
def test_bad_bodies_are_refused_and_store_nothing(app, api, method, path, body, status, field):
    before = _counts(app)
    response = api.call(method, path, json=body)
    assert response.status_code == status, response.json
    assert response.mimetype == "application/problem+json"
    assert response.json["detail"]
    if field is not None:
        assert response.json.get("field") == field
    assert _counts(app) == before


@pytest.mark.parametrize(
    "path,data,content_type",
    [
        ("/contacts", "{broken", "application/json"),
        ("/contacts", '{"email": "a@example.com"}', "text/plain"),
        ("/events/batch", "", "application/json"),
        ("/segments/preview", "[1,", "application/json"),
    ],
)
def test_malformed_json_is_400(app, api, path, data, content_type):
    response = api.call("POST", path, data=data, content_type=content_type)
    assert response.status_code == 400 and response.json["title"] == "Malformed JSON"
    assert _counts(app)["Contact"] == 0


@pytest.mark.parametrize(
    "query,field",
    [
        ("sort=email;DROP TABLE contacts", "sort"),
        ("sort=-created_at,id", "sort"),
        ("sort=(select 1)", "sort"),
        ("limit=0", "limit"),
        ("limit=100000", "limit"),
        ("limit=ten", "limit"),
        ("tag=x&order=id", "order"),
        ("cursor=' OR 1=1 --", "cursor"),
    ],
)
def test_filters_and_sort_are_allow_listed(app, api, query, field):
    api.post("/contacts", json={"email": "a@example.com"})
    response = api.get(f"/contacts?{query}")
    assert response.status_code == 400 and response.json["field"] == field
    assert _counts(app)["Contact"] == 1


def test_sql_metacharacters_in_filter_values_are_plain_data(api):
    made = api.post("/contacts", json={"email": "o'hara@example.com", "stage": "x' OR '1'='1"}).json
    assert api.get("/contacts?stage=x' OR '1'='1").json["data"][0]["id"] == made["id"]
    assert api.get("/contacts?stage=' OR '1'='1").json["data"] == []
    assert api.get("/contacts?tag=%25").json["data"] == []


def test_xss_payloads_are_stored_verbatim_and_served_as_json(api):
    payload = "<img src=x onerror=alert(1)>"
    made = api.post("/contacts", json={"email": "x@example.com", "first_name": payload, "tags": [payload]})
    assert made.status_code == 201 and made.json["first_name"] == payload and made.json["tags"] == [payload]
    shown = api.get(f"/contacts/{made.json['id']}")
    assert shown.mimetype == "application/json" and shown.json["first_name"] == payload


def test_oversized_single_event_is_413(app, api):
    big = {"contact": {"email": "a@example.com"}, "event": "x.y", "props": {"blob": "x" * 300_000}}
    response = api.post("/events", json=big)
    assert response.status_code == 413
    assert _counts(app)["Event"] == 0


def test_ids_out_of_range_are_404_not_500(api):
    assert api.get(f"/contacts/{2**40}").status_code == 404
    assert api.get("/tasks/0").status_code == 404
