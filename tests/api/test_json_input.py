"""Every bad JSON input is a 4xx naming the field, on every JSON endpoint, and nothing is stored."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from server.db import get_session
from server.models import Contact, Event, Template

DEEP = "[" * 2500  # 2.5 kB of nesting
DEEP_BALANCED = "[" * 1200 + "]" * 1200


def _stored(app):
    with app.app_context():
        session = get_session()
        return [session.scalar(select(func.count()).select_from(m)) for m in (Contact, Event, Template)]


def _send(api, path, raw):
    return api.call("POST", path, data=raw, content_type="application/json")


@pytest.mark.parametrize(
    "raw",
    [
        DEEP,
        DEEP_BALANCED,
        '{"contact": {"email": "a@example.com"}, "event": "x.y", "props": {"a": ' + DEEP_BALANCED + "}}",
    ],
)
def test_deeply_nested_json_is_a_4xx_problem(app, ingest, raw):
    for path in ("/events", "/events/batch", "/contacts/upsert"):
        response = _send(ingest, path, raw)
        assert 400 <= response.status_code < 500, (path, response.status_code)
        assert response.mimetype == "application/problem+json" and response.json["detail"]
    assert _stored(app) == [0, 0, 0]


def test_deeply_nested_json_to_the_public_visit_endpoint_is_a_400(client):
    for raw in (DEEP, DEEP_BALANCED, '{"url": "https://a.example/", "v": ' + DEEP_BALANCED + "}"):
        assert client.post("/t/visit", data=raw, content_type="text/plain").status_code == 400


@pytest.mark.parametrize(
    "body,field",
    [
        ('{"contact": {"email": "a@example.com", "first_name": "\\ud800"}, "event": "x.y"}', "contact.first_name"),
        ('{"contact": {"email": "a@example.com", "tags": ["vip", "\\udfff"]}, "event": "x.y"}', "contact.tags[1]"),
        ('{"contact": {"email": "a@example.com"}, "event": "x.y", "props": {"note": "a\\ud83d"}}', "props.note"),
        ('{"contact": {"email": "a@example.com"}, "event": "x.y", "props": {"\\ud800": 1}}', "props"),
    ],
)
def test_lone_surrogates_are_refused_naming_the_field(app, ingest, body, field):
    response = _send(ingest, "/events", body)
    assert response.status_code == 422, response.json
    assert response.json["field"] == field and "surrogate" in response.json["detail"]
    assert _stored(app) == [0, 0, 0]


def test_a_surrogate_pair_is_text_and_is_stored(app, ingest):
    body = '{"contact": {"email": "a@example.com", "first_name": "Ana \\ud83d\\ude00"}, "event": "x.y"}'
    assert _send(ingest, "/events", body).status_code == 202
    with app.app_context():
        assert get_session().scalar(select(Contact.first_name)) == "Ana \U0001f600"


@pytest.mark.parametrize("name", ["Ana\r\nBcc: victim@example.com", "Ana\nSmith", "Ana\rX", "Ana\u2028X"])
def test_line_breaks_in_names_are_refused_at_input(app, api, ingest, name):
    response = ingest.post("/events", json={"contact": {"email": "a@example.com", "first_name": name}, "event": "x.y"})
    assert response.status_code == 422 and response.json["field"] == "contact.first_name"
    assert "one line" in response.json["detail"]
    response = api.post("/contacts", json={"email": "b@example.com", "last_name": name})
    assert response.status_code == 422 and response.json["field"] == "last_name"
    assert _stored(app) == [0, 0, 0]


@pytest.mark.parametrize("subject", ["Hello\r\nBcc: victim@example.com", "Hello\n{{ contact.first_name }}"])
def test_line_breaks_in_template_subjects_are_refused_at_input(app, api, subject):
    response = api.post(
        "/templates", json={"channel": "email", "name": "hello", "parts": {"subject": subject, "txt": "Hi"}}
    )
    assert response.status_code == 422 and response.json["field"] == "parts.subject"
    assert "parts.subject line 1: the subject is one line" in response.json["detail"]
    assert _stored(app) == [0, 0, 0]


@pytest.mark.parametrize("raw", ['{"email": NaN}', '{"email": Infinity}', b'{"email": "\xff"}'])
def test_non_json_values_are_malformed(api, raw):
    response = _send(api, "/contacts", raw)
    assert response.status_code == 400 and response.json["title"] == "Malformed JSON"


def test_the_same_reader_serves_every_json_endpoint(api):
    """A lone surrogate is refused the same way on endpoints that store no contact."""
    for path, body in (("/segments/preview", {"condition": 'tag == "\\ud800"'}), ("/tasks", {"text": "call \\ud800"})):
        raw = json.dumps(body).replace("\\\\ud800", "\\ud800")
        response = _send(api, path, raw)
        assert response.status_code == 422, (path, response.json)
        assert "surrogate" in response.json["detail"]
