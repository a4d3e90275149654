"""Hostile input to the API: each is a 4xx problem naming the field, and nothing is stored."""

from __future__ import annotations

import base64
import io
import json

import pytest
from sqlalchemy import func, select
from werkzeug.test import EnvironBuilder, run_wsgi_app

from server.db import get_session
from server.models import Consent, Contact, Event, FieldDefinition, Form, Segment, Task, Template

from ..helpers import api_key

MODELS = (Consent, Contact, Event, FieldDefinition, Form, Segment, Task, Template)
EVENT = {"contact": {"email": "a@example.com"}, "event": "form.submitted"}


def _counts(app):
    with app.app_context():
        session = get_session()
        return {m.__name__: session.scalar(select(func.count()).select_from(m)) for m in MODELS}


def _refused(response, status: int, field: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.json["field"] == field and response.json["detail"]


@pytest.mark.parametrize(
    "path,body,field",
    [
        ("/events", {**EVENT, "event": "form.submitted\n"}, "event"),
        ("/events/batch", {"events": [EVENT, {**EVENT, "event": "form.submitted\n"}]}, "events[1].event"),
        ("/segments", {"name": "vips\n", "condition": 'tag == "vip"'}, "name"),
        ("/templates", {"channel": "email", "name": "welcome\n", "parts": {"subject": "Hi", "txt": "Hi"}}, "name"),
        ("/forms", {"slug": "news\n", "channel": "email"}, "slug"),
        ("/forms", {"slug": "news", "channel": "email\n"}, "channel"),
        ("/fields", {"name": "plan\n", "type": "string"}, "name"),
    ],
)
def test_a_name_with_a_trailing_line_break_is_refused_naming_the_field(app, api, path, body, field):
    """A schema's ``$`` ends the text, as JSON Schema reads it: Python's also matched before a final line break."""
    before = _counts(app)
    _refused(api.post(path, json=body), 422, field)
    assert _counts(app) == before


def test_a_consent_channel_with_a_trailing_line_break_is_refused(app, api):
    contact = api.post("/contacts", json={"email": "a@example.com"}).json
    before = _counts(app)
    response = api.post(f"/contacts/{contact['id']}/consents", json={"channel": "email\n", "granted": True})
    _refused(response, 422, "channel")
    assert "channel name" in response.json["detail"]
    assert _counts(app) == before


def test_an_event_posted_through_the_lean_path_with_a_trailing_line_break_stores_nothing(app, ingest):
    assert ingest.post("/events", json=EVENT).status_code == 202  # the key's use noted: later posts take the lean path
    before = _counts(app)
    _refused(ingest.post("/events", json={**EVENT, "event": "form.submitted\n"}), 422, "event")
    assert _counts(app) == before


@pytest.mark.parametrize(
    "path,query,field",
    [
        ("/contacts", "limit=1&limit=2", "limit"),
        ("/events", "sort=id&sort=-id", "sort"),
        ("/tasks", "status=open&status=done", "status"),
        ("/contacts", "tag=vip&tag=lead", "tag"),
    ],
)
def test_a_query_parameter_given_twice_is_refused_naming_it(api, path, query, field):
    response = api.get(f"{path}?{query}")
    _refused(response, 400, field)
    assert "given 2 times; give it once" in response.json["detail"]


@pytest.mark.parametrize("raw", [" 5", "5 ", "1_0", "+5", "\u0663", "0x10", "1e3"])
def test_an_integer_query_parameter_takes_ascii_digits_only(api, raw):
    response = api.get("/contacts", query_string={"limit": raw})
    _refused(response, 400, "limit")
    assert "must be an integer (digits 0-9)" in response.json["detail"]


@pytest.mark.parametrize(
    "path,name,detail",
    [
        ("/contacts", "limit", "limit must be at most 200"),
        ("/events", "contact_id", "contact_id must be at most 2147483647"),
        ("/rules/welcome/stats", "version", "version must be at most 2147483647"),
    ],
)
def test_an_integer_query_parameter_of_thousands_of_digits_is_out_of_range(api, path, name, detail):
    """``int()`` refuses more than 4,300 digits with advice for Python programmers: the answer names the bound."""
    response = api.get(path, query_string={name: "9" * 5000})
    _refused(response, 400, name)
    assert response.json["detail"] == detail
    _refused(api.get(path, query_string={name: "-" + "9" * 5000}), 400, name)


@pytest.mark.parametrize("path", ["/stats/overview", "/stats/templates", "/rules/welcome/stats"])
def test_a_bad_until_is_named_as_until(api, path):
    response = api.get(path, query_string={"until": "next tuesday"})
    _refused(response, 400, "until")
    assert response.json["detail"].startswith("until 'next tuesday' is not a date")
    _refused(api.get(path, query_string={"since": "next tuesday"}), 400, "since")


LONG = "9" * 5000


@pytest.mark.parametrize(
    "path,raw,field",
    [
        ("/events", '{"contact": {"email": "a@example.com"}, "event": "x.y", "props": {"n": ' + LONG + "}}", "props.n"),
        (
            "/events/batch",
            '{"events": [{"contact": {"email": "a@example.com"}, "event": "x.y"}, '
            '{"contact": {"email": "a@example.com"}, "event": "x.y", "props": {"n": [1, -' + LONG + "]}}]}",
            "events[1].props.n[1]",
        ),
        ("/contacts", '{"email": "a@example.com", "score": ' + LONG + "}", "score"),
        ("/contacts/upsert", LONG, ""),
    ],
)
def test_an_integer_literal_of_thousands_of_digits_is_refused_naming_the_field(app, api, path, raw, field):
    before = _counts(app)
    response = api.call("POST", path, data=raw, content_type="application/json")
    _refused(response, 422, field)
    assert "is an integer of 5000 digits, outside the 64-bit range" in response.json["detail"]
    assert "set_int_max_str_digits" not in response.json["detail"]
    assert _counts(app) == before


def test_a_long_integer_beside_nan_is_still_malformed(api):
    response = api.call("POST", "/contacts", data='{"score": ' + LONG + ', "x": NaN}', content_type="application/json")
    assert response.status_code == 400 and response.json["title"] == "Malformed JSON"


@pytest.mark.parametrize("expires", ["9999-12-31T23:59:59-14:00", "9999-12-31T20:00:00-10:00"])
def test_an_api_key_expiry_past_the_year_9999_is_refused_naming_the_field(app, api, expires):
    before = api.get("/apikeys").json
    response = api.post("/apikeys", json={"scope": "ingest", "expires": expires})
    _refused(response, 422, "expires")
    assert "past the year 9999" in response.json["detail"]
    assert api.get("/apikeys").json == before


def _post_raw(app, path: str, body: bytes, key: str, content_length: str):
    """A post whose Content-Length is *content_length* whatever the body (the test client would correct it)."""
    environ = EnvironBuilder(
        path=path, method="POST", data=body, headers={"Authorization": f"Bearer {key}"}, content_type="application/json"
    ).get_environ()
    environ.update({"CONTENT_LENGTH": content_length, "wsgi.input": io.BytesIO(body)})
    environ.pop("wsgi.input_terminated", None)
    chunks, status, headers = run_wsgi_app(app.wsgi_app, environ)
    return int(status.split()[0]), headers.get("Content-Type"), json.loads(b"".join(chunks))


@pytest.mark.parametrize("path,body", [("/api/v1/events", EVENT), ("/api/v1/events/batch", {"events": [EVENT]})])
def test_a_body_shorter_than_its_content_length_is_an_incomplete_body(app, ingest, path, body):
    """Through the lean path (a known key) and Flask's: the answer says the body ended early, not "Bad Request"."""
    assert ingest.post("/events", json=EVENT).status_code == 202  # the key's use noted: the lean path answers next
    before = _counts(app)
    raw = json.dumps(body).encode()
    status, content_type, answer = _post_raw(app, path, raw, ingest.key, str(len(raw) + 10))
    assert (status, content_type, answer["title"]) == (400, "application/problem+json", "Incomplete body")
    assert f"before the {len(raw) + 10} bytes its Content-Length announced" in answer["detail"]
    assert _counts(app) == before


@pytest.mark.parametrize("declared", ["abc", "-1", "1_0", "+5"])
def test_a_content_length_that_is_not_a_number_is_refused_naming_it(app, ingest, declared):
    """Werkzeug reads it as 0: the answer was "the body is not valid JSON", about a body that was never read."""
    before = _counts(app)
    status, content_type, answer = _post_raw(app, "/api/v1/events", json.dumps(EVENT).encode(), ingest.key, declared)
    assert (status, content_type) == (400, "application/problem+json")
    assert answer["field"] == "Content-Length" and "is not a number of bytes" in answer["detail"]
    assert _counts(app) == before


@pytest.mark.parametrize(
    "url", ["https://a.example/\r\nSet-Cookie: x=1", "https://a.example/\n", "https://a.example/ x", "https://"]
)
def test_a_form_redirect_url_with_a_line_break_or_space_is_refused(app, api, url):
    """As on the admin page: stored, it made every submission of the public form a 500 (a header with a newline)."""
    before = _counts(app)
    _refused(api.post("/forms", json={"slug": "news", "channel": "email", "redirect_url": url}), 422, "redirect_url")
    assert _counts(app) == before
    assert api.post("/forms", json={"slug": "news", "channel": "email"}).status_code == 201
    _refused(api.patch("/forms/news", json={"redirect_url": url}), 422, "redirect_url")
    assert api.get("/forms/news").json["redirect_url"] is None


def test_a_rule_name_longer_than_a_rule_row_holds_is_refused(app, api):
    """PostgreSQL refused the row (VARCHAR(255)) with a 500; SQLite stored it. Now both say so, and store nothing."""
    name = "x" * 300
    text = f'rule "{name}"\nwhen form.submitted then\n  send email welcome\nend\n'
    checked = api.post("/rules/validate", json={"text": text}).json
    assert checked["valid"] is False
    assert "a rule's name has at most 255 characters (this one has 300)" in checked["errors"][0]
    response = api.put("/rules", json={"text": text})
    _refused(response, 422, "text")
    assert response.json["detail"].startswith("rules.nudge:1:6: a rule's name has at most 255 characters")
    assert api.get("/rules").json == {"items": []}


@pytest.mark.parametrize(
    "path,body,field",
    [
        ("/events", {**EVENT, "occurred_at": ""}, "occurred_at"),
        ("/events/batch", {"events": [EVENT, {**EVENT, "occurred_at": ""}]}, "events[1].occurred_at"),
        ("/tasks", {"text": "call back", "due_at": ""}, "due_at"),
    ],
)
def test_an_empty_timestamp_is_refused_like_a_blank_one(app, api, path, body, field):
    """ " " was refused as empty while "" passed as "now" (an event) or "no due date" (a task)."""
    before = _counts(app)
    response = api.post(path, json=body)
    _refused(response, 422, field)
    assert response.json["detail"] == f"{field} must not be empty"
    assert _counts(app) == before


def test_a_segment_batch_with_an_integer_of_thousands_of_digits_names_it(app):
    """The Segment-compatible ingest reads JSON the same way: the message's field, not Python's advice."""
    key = api_key(app, "ingest")
    before = _counts(app)
    raw = '{"batch": [{"type": "track", "userId": "u1", "event": "Order Paid", "properties": {"n": ' + LONG + "}}]}"
    response = app.test_client().post(
        "/v1/batch",
        data=raw,
        content_type="application/json",
        headers={"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()},
    )
    _refused(response, 400, "batch[0].properties.n")
    assert "is an integer of 5000 digits, outside the 64-bit range" in response.json["message"]
    assert _counts(app) == before


DEEP_TEMPLATES = ["{{ " * 5000, "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}", "{{ " + "[" * 5000 + " }}"]


@pytest.mark.parametrize("source", DEEP_TEMPLATES)
def test_a_template_nested_too_deeply_to_read_is_refused_naming_its_part(app, api, source):
    """Jinja's parser recursed past the stack: a RecursionError, answered 500."""
    before = _counts(app)
    body = {"channel": "email", "name": "deep", "parts": {"subject": "Hi", "txt": source}}
    response = api.post("/templates", json=body)
    _refused(response, 422, "parts.txt")
    assert "nests too deeply" in response.json["detail"]
    assert _counts(app) == before
    made = api.post("/templates", json={**body, "parts": {"subject": "Hi", "txt": "Hello"}}).json
    _refused(api.put(f"/templates/{made['id']}", json={"parts": {"subject": "Hi", "txt": source}}), 422, "parts.txt")
    assert api.get(f"/templates/{made['id']}").json["parts"]["txt"] == "Hello"


@pytest.mark.parametrize(
    "source",
    [
        "Hi\n{% include '/etc/passwd' %}",
        "Hi\n{% extends 'base' %}",
        "Hi\n{% import 'm' as m %}",
        "Hi\n{% from 'm' import x %}",
    ],
)
def test_a_template_that_includes_extends_or_imports_another_is_refused_at_its_line(app, api, source):
    """Templates have no loader: it was saved as valid, then every send of it failed."""
    before = _counts(app)
    response = api.post(
        "/templates", json={"channel": "email", "name": "other", "parts": {"subject": "Hi", "txt": source}}
    )
    _refused(response, 422, "parts.txt")
    assert response.json["detail"] == (
        "parts.txt line 2: a template cannot include, extend or import another: put that text in this template"
    )
    assert _counts(app) == before


def test_a_template_of_an_unknown_channel_names_the_channel_field(app, api):
    """It was named "parts.channel", a part the body does not have."""
    body = {"channel": "nosuch", "name": "hello", "parts": {"subject": "Hi", "txt": "Hello"}}
    response = api.post("/templates", json=body)
    _refused(response, 422, "channel")
    assert response.json["detail"].startswith("channel: unknown channel 'nosuch'; installed: ")
    assert _counts(app) == dict.fromkeys(_counts(app), 0)


@pytest.mark.parametrize("name", ["email", "external_id", "tag", "stage"])
def test_an_empty_contact_filter_is_refused_rather_than_matching_everyone(api, name):
    """``?email=`` (a client's empty variable) answered the first page of every contact."""
    api.post("/contacts", json={"email": "a@example.com", "external_id": "crm-1", "stage": "lead", "tags": ["vip"]})
    response = api.get("/contacts", query_string={name: ""})
    _refused(response, 400, name)
    assert response.json["detail"] == f"{name} must not be empty"


def test_a_double_opt_in_form_naming_a_template_that_does_not_exist_is_refused(app, api):
    """Every sign-up's confirmation failed to send: nobody could ever confirm."""
    response = api.post("/forms", json={"slug": "news", "confirm_template": "confirm_signup"})
    _refused(response, 422, "confirm_template")
    assert "there is no email template named 'confirm_signup'" in response.json["detail"]
    assert api.get("/forms").json == []
    assert api.post("/forms", json={"slug": "news"}).status_code == 201  # the built-in confirm_subscription
    _refused(api.patch("/forms/news", json={"confirm_template": "nope"}), 422, "confirm_template")
    assert api.patch("/forms/news", json={"confirm_template": "nope", "double_opt_in": False}).status_code == 200
