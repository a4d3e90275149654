"""The lean ingest path (issue #12, point 1, second round): the key look-up without the ORM still honours a
revocation or an expiry from the next request; requests share one waiting job (a flag check each); the request body
check generated from the schema accepts exactly what the schema accepts; the JSON reader's quick checks refuse what
the full walk refuses."""

from __future__ import annotations

import json
import math
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from server.api.validation import SCHEMAS, validate, validator
from server.contacts.errors import InvalidInput
from server.db import get_session
from server.models import ApiKey, Event, utcnow
from server.sdk import MAX_JSON_DEPTH, JsonInputError, parse_json

from ..helpers import api_key, run_worker

EVENT = {"contact": {"email": "a@example.com"}, "event": "form.submitted"}


def _post(client, key, body=EVENT):
    return client.post("/api/v1/events", json=body, headers={"Authorization": f"Bearer {key}"})


def _set_key(app, key, **values):
    with app.app_context():
        session = get_session()
        session.execute(update(ApiKey).where(ApiKey.prefix == key.split("_")[2]).values(**values))
        session.commit()


def test_a_key_in_use_is_refused_from_the_request_after_its_revocation(app, client):
    key = api_key(app, "ingest")
    assert _post(client, key).status_code == 202  # notes the key's use: the next requests take the quick look-up
    assert _post(client, key).status_code == 202
    _set_key(app, key, revoked_at=utcnow())
    refused = _post(client, key)
    assert refused.status_code == 401 and refused.json["title"] == "API key revoked"
    assert refused.mimetype == "application/problem+json"


def test_a_key_in_use_is_refused_from_the_request_after_it_expires(app, client):
    key = api_key(app, "ingest")
    assert _post(client, key).status_code == 202
    _set_key(app, key, expires_at=utcnow() + timedelta(days=1))
    assert _post(client, key).status_code == 202
    _set_key(app, key, expires_at=utcnow() - timedelta(seconds=1))
    refused = _post(client, key)
    assert refused.status_code == 401 and refused.json["title"] == "API key expired"


def test_a_key_in_use_keeps_its_scope_and_its_last_use_is_still_noted(app, client):
    key = api_key(app, "ingest")
    assert _post(client, key).status_code == 202
    response = client.get("/api/v1/contacts", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 403 and "scope" in response.json["detail"]
    long_ago = utcnow() - timedelta(hours=1)
    _set_key(app, key, last_used_at=long_ago)
    assert _post(client, key).status_code == 202
    with app.app_context():
        noted = get_session().scalar(select(ApiKey.last_used_at).where(ApiKey.prefix == key.split("_")[2]))
    assert noted > long_ago + timedelta(minutes=30)


def _execs(app):
    stats = app.extensions["nudge.queue"].redis.info("commandstats")
    return stats.get("cmdstat_exec", {}).get("calls", 0)


def _commands(app):
    stats = app.extensions["nudge.queue"].redis.info("commandstats")
    return sum(stat.get("calls", 0) for stat in stats.values())


def test_requests_share_the_one_waiting_job_and_add_one_redis_command_each(app, client):
    """The first request queues a job (one MULTI/EXEC); while it waits, others add a flag check and no job."""
    key = api_key(app, "ingest")
    queue = app.extensions["nudge.queue"].queue
    before = _execs(app)
    ids = [_post(client, key).json["id"]]
    assert _execs(app) - before == 1
    assert [job.func_name for job in queue.get_jobs()] == ["server.engine.wake.process_pending"]
    for i in range(10):
        commands = _commands(app)
        answer = _post(client, key, {"contact": {"email": f"b{i}@example.com"}, "event": "form.submitted"})
        assert answer.status_code == 202
        assert _commands(app) - commands == 2  # the SET NX, and the INFO asking
        ids.append(answer.json["id"])
    assert _execs(app) - before == 1 and queue.count == 1
    run_worker(app)
    with app.app_context():
        pending = get_session().scalars(select(Event.id).where(Event.processed_at.is_(None))).all()
    assert pending == [] and queue.count == 0
    assert _post(client, key).status_code == 202  # the job ran: the next events queue the next one
    assert queue.count == 1


# --- the body check generated from the schemas ---

SCALARS = [None, True, False, 0, 1, -1, 2**31, 2**70, 1.5, -0.0, math.inf, math.nan, "", "a", "x" * 300, "a\x00b"]
SCALARS += ["form.submitted", "Form.Submitted", "a@example.com", "2026-05-01T12:00:00Z", "ingest", "email", [], {}]


def _samples(schema, depth=0):
    """Values around *schema*: every scalar, and for an object its properties one by one with each value (nested
    objects and lists from their own samples), with and without the required ones."""
    if "$ref" in schema:
        schema = SCHEMAS[schema["$ref"].rsplit("/", 1)[-1]]
    out = list(SCALARS)
    if depth > 2:
        return out
    required = dict.fromkeys(schema.get("required", ()), "x")
    for name, sub in schema.get("properties", {}).items():
        for value in _samples(sub, depth + 1):
            out += [{name: value}, {**required, name: value}]
    if "items" in schema:
        out += [[value] for value in _samples(schema["items"], depth + 1)]
        out.append(["a"] * 1001)
    out += [required, {**required, "unknown": 1}]
    return out


def _outcome(check, value):
    try:
        return ("ok", check(value))
    except InvalidInput as exc:
        return ("error", exc.field, str(exc))


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_the_generated_body_check_accepts_and_refuses_as_the_schema_says(name):
    schema = SCHEMAS[name]
    fast = validator(schema)
    for value in _samples(schema):
        assert _outcome(fast, value) == _outcome(lambda v: validate(schema, v), value), (name, value)


def test_a_batch_with_one_bad_event_is_named_as_before(app, client):
    key = api_key(app, "ingest")
    body = {"events": [EVENT, {**EVENT, "event": "Not A Name"}]}
    response = client.post("/api/v1/events/batch", json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 422 and response.json["field"] == "events[1].event"
    assert "dotted lowercase name" in response.json["detail"]


# --- the JSON reader's quick checks ---


def _nested(levels: int, inner: str = "1") -> bytes:
    return ("[" * levels + inner + "]" * levels).encode()


def test_nesting_is_allowed_to_the_limit_and_refused_past_it():
    assert parse_json(_nested(MAX_JSON_DEPTH)) is not None
    with pytest.raises(JsonInputError, match="nests deeper"):
        parse_json(_nested(MAX_JSON_DEPTH + 1))
    # brackets inside strings are text: they neither add levels nor hide them
    assert parse_json(_nested(MAX_JSON_DEPTH, '"]]]][[[["')) is not None
    with pytest.raises(JsonInputError, match="nests deeper"):
        parse_json(_nested(MAX_JSON_DEPTH + 1, '"]]]]"'))
    mixed = b'{"a": ' + _nested(MAX_JSON_DEPTH - 1, '{"b": "]"}') + b"}"
    with pytest.raises(JsonInputError, match="nests deeper") as refused:
        parse_json(mixed)
    assert refused.value.field.startswith("a[0]")


@pytest.mark.parametrize(
    "raw,field",
    [
        (b'{"name": "\xed\xa0\x80"}', "name"),  # a surrogate in UTF-8 bytes (json.loads passes it through)
        (b'{"name": "\\uD800"}', "name"),
        (b'{"a": ["ok", "\\udc00"]}', "a[1]"),
    ],
)
def test_a_lone_surrogate_in_any_spelling_is_refused(raw, field):
    with pytest.raises(JsonInputError, match="surrogate") as refused:
        parse_json(raw)
    assert refused.value.field == field


def test_utf16_bodies_are_still_checked():
    body = json.dumps({"name": "\udc00"}, ensure_ascii=False).encode("utf-16", "surrogatepass")
    with pytest.raises(JsonInputError, match="surrogate"):
        parse_json(body)
