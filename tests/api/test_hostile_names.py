"""Hostile input to the API, answered by naming what is wrong: a props key, a blank text, an id, a channel."""

from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import func, select

from server.db import get_session
from server.models import Consent, Contact, Event, Task

from ..helpers import api_key

MODELS = (Consent, Contact, Event, Task)
EVENT = {"contact": {"email": "a@example.com"}, "event": "form.submitted"}


def _counts(app):
    with app.app_context():
        session = get_session()
        return {
            m.__name__: session.scalar(select(func.count()).select_from(m)) for m in (Consent, Contact, Event, Task)
        }


def _refused(response, status: int, field: str) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.json["field"] == field
    return response.json["detail"]


# -- a bad key in props ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "props,field,named",
    [
        ({"ok": 1, "a\x00b": 1}, "props", r"'a\x00b'"),
        ({"cart": {"items": [{"sku\x00": 1}]}}, "props.cart.items[0]", r"'sku\x00'"),
        ({"cart": {"\udfff": 1}}, "props.cart", r"'\udfff'"),
    ],
)
def test_a_bad_key_in_an_events_props_is_named(app, api, props, field, named):
    """The error said "has a key with a NUL character or a lone surrogate", and not which of the keys."""
    before = _counts(app)
    raw = json.dumps({**EVENT, "props": props})  # a lone surrogate as its \\u escape, as a client sends it
    detail = _refused(api.call("POST", "/events", data=raw, content_type="application/json"), 422, field)
    assert named in detail, detail
    batch = json.dumps({"events": [EVENT, {**EVENT, "props": props}]})
    detail = _refused(
        api.call("POST", "/events/batch", data=batch, content_type="application/json"), 422, f"events[1].{field}"
    )
    assert named in detail, detail
    assert _counts(app) == before


def test_a_bad_key_in_props_is_named_on_the_lean_path(app, ingest):
    assert ingest.post("/events", json=EVENT).status_code == 202  # the key's use noted: later posts take the lean path
    before = _counts(app)
    detail = _refused(ingest.post("/events", json={**EVENT, "props": {"plan\x00": "pro"}}), 422, "props")
    assert r"'plan\x00'" in detail and "NUL" in detail
    assert _counts(app) == before


def test_a_long_bad_key_is_named_by_its_start(app, api):
    key = "k" * 5000 + "\x00"
    detail = _refused(api.post("/events", json={**EVENT, "props": {key: 1}}), 422, "props")
    assert "'kkkk" in detail and len(detail) < 300


# -- a task of spaces ---------------------------------------------------------------------------------
@pytest.mark.parametrize("blank", [" ", "   ", "\t\n ", "\u3000"])
def test_a_task_text_of_only_spaces_is_refused_like_an_empty_one(app, api, blank):
    before = _counts(app)
    detail = _refused(api.post("/tasks", json={"text": blank}), 422, "text")
    assert "must not be blank" in detail or "must not be empty" in detail
    assert _counts(app) == before
    task = api.post("/tasks", json={"text": "Call Ann"}).json
    _refused(api.patch(f"/tasks/{task['id']}", json={"text": blank}), 422, "text")
    assert api.get(f"/tasks/{task['id']}").json["text"] == "Call Ann"


def test_a_task_text_with_spaces_around_words_is_kept(api):
    assert api.post("/tasks", json={"text": "  Call Ann  "}).status_code == 201


# -- a negative id -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "method,path,what",
    [
        ("GET", "/contacts/-1", "contact"),
        ("GET", "/contacts/-1/events", "contact"),
        ("POST", "/contacts/-5/notes", "contact"),
        ("GET", "/tasks/-1", "task"),
        ("DELETE", "/tasks/-1", "task"),
        ("GET", "/messages/-1", "message"),
        ("GET", "/contacts/0", "contact"),
        ("GET", "/contacts/99999999999999999999999", "contact"),
    ],
)
def test_an_id_out_of_range_is_no_such_record_not_no_such_endpoint(api, method, path, what):
    """``<int:…>`` matched no minus sign: the answer was "no such endpoint", as for a typo in the path."""
    body = {"body": "hi"} if method == "POST" else None
    response = api.call(method, path, json=body)
    assert response.status_code == 404 and response.mimetype == "application/problem+json"
    assert f"there is no {what} with id" in response.json["detail"]


# -- a numeric Segment userId -----------------------------------------------------------------------
@pytest.fixture
def write_key(app):
    return api_key(app, "ingest")


def _segment(client, key, body):
    headers = {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}
    return client.post("/v1/batch", data=json.dumps(body), headers=headers, content_type="application/json")


@pytest.mark.parametrize("raw", ["1e300", "1.5", "1e3", "18446744073709551616", "-9223372036854775809", "1.0"])
def test_a_segment_user_id_that_is_not_a_64_bit_integer_is_refused_naming_it(app, client, write_key, raw):
    """``1e300`` became the external id ``"1e+300"``."""
    before = _counts(app)
    body = '{"batch": [{"type": "track", "userId": ' + raw + ', "event": "Signed Up"}]}'
    headers = {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}
    response = client.post("/v1/batch", data=body, headers=headers, content_type="application/json")
    detail = _refused(response, 400, "batch[0].userId")
    assert "whole number" in detail
    assert _counts(app) == before


@pytest.mark.parametrize("value", [42, -7, 2**63 - 1, -(2**63)])
def test_a_segment_user_id_that_is_a_64_bit_integer_is_its_decimal_text(app, client, write_key, value):
    response = _segment(client, write_key, {"batch": [{"type": "identify", "userId": value, "traits": {}}]})
    assert response.status_code == 200, response.json
    with app.app_context():
        assert get_session().scalar(select(Contact.external_id)) == str(value)


@pytest.mark.parametrize("name", ["anonymousId", "messageId"])
def test_other_segment_ids_take_whole_numbers_alike(app, client, write_key, name):
    body = '{"batch": [{"type": "track", "userId": "u-1", "' + name + '": 1e300, "event": "Signed Up"}]}'
    headers = {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}
    response = client.post("/v1/batch", data=body, headers=headers, content_type="application/json")
    _refused(response, 400, f"batch[0].{name}")


# -- consent for a channel that is not installed ----------------------------------------------------
def test_a_consent_grant_for_a_channel_not_installed_is_refused_naming_the_installed(app, api):
    contact = api.post("/contacts", json={"email": "a@example.com"}).json
    before = _counts(app)
    response = api.post(f"/contacts/{contact['id']}/consents", json={"channel": "fax", "granted": True})
    detail = _refused(response, 422, "channel")
    assert "'fax'" in detail and "installed: " in detail and "email" in detail
    assert _counts(app) == before


def test_an_opt_out_of_a_channel_not_installed_is_still_recorded(app, api):
    """An opt-out is never refused: a channel installed again later must still honour it."""
    contact = api.post("/contacts", json={"email": "a@example.com"}).json
    response = api.post(f"/contacts/{contact['id']}/consents", json={"channel": "fax", "granted": False})
    assert response.status_code == 201, response.json
    assert response.json["channel"] == "fax" and response.json["status"] == "revoked"


def test_a_consent_grant_for_an_installed_channel_is_recorded(api):
    contact = api.post("/contacts", json={"email": "a@example.com"}).json
    response = api.post(f"/contacts/{contact['id']}/consents", json={"channel": "email", "granted": True})
    assert response.status_code == 201 and response.json["status"] == "granted"


def test_an_id_in_another_scripts_digits_names_no_record(api):
    """``<int:…>`` read any Unicode digit: ``/contacts/١`` (Arabic-Indic one) was contact 1."""
    contact = api.post("/contacts", json={"email": "a@example.com"}).json
    assert contact["id"] == 1
    response = api.get("/contacts/\u0661")
    assert response.status_code == 404 and response.mimetype == "application/problem+json"
    assert "email" not in response.json
