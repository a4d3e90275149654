"""The Segment-compatible ingest on the wire (issue #16, point 1): /v1/batch and the single-message endpoints,
write keys as HTTP Basic users or ``writeKey``, JSON as application/json or text/plain, gzip (with the unpacked size
bounded), Segment's limits, messageId deduplication, 429 with Retry-After, and what each message becomes."""

from __future__ import annotations

import base64
import gzip
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from server.db import get_session
from server.models import AnonymousId, Contact, Event, FieldDefinition
from server.segment_names import default_name, parse_event_map

from ..helpers import api_key, run_worker


def _basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def _post(client, path, body, key=None, *, headers=None, content_type="application/json", raw=None):
    data = raw if raw is not None else json.dumps(body).encode()
    all_headers = {**(_basic(key) if key else {}), **(headers or {})}
    return client.post(path, data=data, headers=all_headers, content_type=content_type)


def _track(i=0, **extra):
    return {"type": "track", "userId": "u-1", "event": "Form Submitted", "messageId": f"m-{i}", **extra}


def _events(app, *where):
    with app.app_context():
        rows = get_session().execute(select(Event.name, Event.props, Event.contact_id).where(*where).order_by(Event.id))
        return [tuple(row) for row in rows]


def _count(app, model):
    with app.app_context():
        return get_session().scalar(select(func.count()).select_from(model))


@pytest.fixture
def key(app):
    return api_key(app, "ingest")


# --- names ---


@pytest.mark.parametrize(
    ("segment", "nudge"),
    [
        ("Form Submitted", "form.submitted"),
        ("Product Added To Cart", "product.added_to_cart"),
        ("Signup", "segment.signup"),
        ("order_completed", "order.completed"),
        ("Email Opened", "segment.email_opened"),  # email.* is the email channel's own
        ("  Checkout -- Started  ", "checkout.started"),
        ("2FA Enabled", None),
        ("!!!", None),
    ],
)
def test_track_names_map_to_dotted_names_by_default(segment, nudge):
    assert default_name(segment, {"email", "contact"}) == nudge


def test_the_event_map_is_parsed_from_pairs_or_json_and_bad_entries_are_named():
    assert parse_event_map("Order Completed=order.paid; Signed Up = account.created") == {
        "Order Completed": "order.paid",
        "Signed Up": "account.created",
    }
    assert parse_event_map('{"2FA Enabled": "security.two_factor_on"}') == {"2FA Enabled": "security.two_factor_on"}
    with pytest.raises(ValueError, match="'Paid' maps to 'Paid'"):
        parse_event_map("Paid=Paid")
    with pytest.raises(ValueError, match="has no '='"):
        parse_event_map("Order Completed")


def test_a_bad_event_map_stops_the_start_naming_the_variable(config):
    from server.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="NUDGE_SEGMENT_EVENT_MAP: 'Paid' maps to 'paid'"):
        load_config({**config, "SEGMENT_EVENT_MAP": "Paid=paid"})


# --- each message kind ---


def test_a_batch_of_tracks_is_stored_as_events_and_answered_as_segment_does(app, client, key):
    body = {"batch": [_track(0, properties={"form": "demo"}), _track(1, event="Product Added To Cart")]}
    response = _post(client, "/v1/batch", body, key)
    assert response.status_code == 200 and response.json == {"success": True}
    events = _events(app)
    assert [(name, props) for name, props, _ in events] == [
        ("form.submitted", {"form": "demo"}),
        ("product.added_to_cart", {}),
    ]
    with app.app_context():
        contact = get_session().get(Contact, events[0][2])
        assert contact.external_id == "u-1"
    queued = app.extensions["nudge.queue"].queue.get_jobs()
    assert [job.func_name for job in queued] == ["server.engine.wake.process_pending"]
    run_worker(app)
    with app.app_context():
        assert get_session().scalars(select(Event.id).where(Event.processed_at.is_(None))).all() == []


def _ids(app):
    with app.app_context():
        return list(get_session().scalars(select(Event.id)))


def test_the_event_map_overrides_the_default_per_name(app, client, key):
    app.config["SEGMENT_EVENT_MAP"] = {"Order Completed": "order.paid"}
    _post(client, "/v1/track", _track(event="Order Completed"), key)
    assert [e[0] for e in _events(app)] == ["order.paid"]


def test_the_timestamp_is_when_the_event_happened(app, client, key):
    _post(client, "/v1/track", _track(timestamp="2026-05-01T12:00:00+02:00"), key)
    with app.app_context():
        at = get_session().scalar(select(Event.occurred_at))
    assert at.isoformat() == "2026-05-01T10:00:00+00:00"


def test_identify_maps_traits_to_contact_fields(app, client, key):
    with app.app_context():
        session = get_session()
        session.add(FieldDefinition(name="plan", type="string", label="Plan"))
        session.commit()
    traits = {"email": "Ana@Example.com", "firstName": "Ana", "lastName": "Lima", "plan": "pro", "shoe": 42}
    response = _post(client, "/v1/identify", {"userId": "u-7", "traits": traits}, key)
    assert response.status_code == 200
    with app.app_context():
        contact = get_session().scalar(select(Contact).where(Contact.external_id == "u-7"))
        assert (contact.email, contact.first_name, contact.last_name) == ("ana@example.com", "Ana", "Lima")
        assert contact.fields == {"plan": "pro"}  # a trait that is no custom field is not kept
    assert [e[0] for e in _events(app)] == ["contact.created"]
    _post(
        client,
        "/v1/identify",
        {"userId": "u-7", "traits": {"name": "Ana Maria Souza", "phone": "+1 415 555 2671"}},
        key,
    )
    with app.app_context():
        contact = get_session().scalar(select(Contact).where(Contact.external_id == "u-7"))
        assert (contact.first_name, contact.last_name, contact.phone) == ("Ana", "Maria Souza", "+14155552671")
    assert [e[0] for e in _events(app)] == ["contact.created", "contact.updated"]


def test_a_visitors_events_belong_to_the_contact_after_identify(app, client, key):
    """Anonymous events go to a visitor; identify merges it into the named contact (existing or not)."""
    with app.app_context():  # the person is already known by email
        session = get_session()
        session.add(Contact(email="bo@example.com", fields={}, score=0))
        session.commit()
    page = {"type": "page", "anonymousId": "anon-1", "name": "Pricing", "properties": {"url": "https://x.example/p"}}
    body = {"batch": [page, {"type": "track", "anonymousId": "anon-1", "event": "Video Played"}]}
    assert _post(client, "/v1/batch", body, key).status_code == 200
    visitor = _events(app)[0][2]
    assert [(n, p) for n, p, _ in _events(app)] == [
        ("page.visited", {"url": "https://x.example/p", "name": "Pricing"}),
        ("video.played", {}),
    ]
    identify = {"type": "identify", "userId": "u-9", "anonymousId": "anon-1", "traits": {"email": "bo@example.com"}}
    assert _post(client, "/v1/identify", identify, key).status_code == 200
    later = {"type": "track", "anonymousId": "anon-1", "event": "Video Paused"}
    assert _post(client, "/v1/track", later, key).status_code == 200
    with app.app_context():
        session = get_session()
        bo = session.scalar(select(Contact).where(Contact.email == "bo@example.com"))
        assert bo.external_id == "u-9"
        assert session.get(Contact, visitor) is None  # merged away
        assert session.scalar(select(AnonymousId.contact_id)) == bo.id
    assert {contact for _n, _p, contact in _events(app)} == {bo.id}
    assert [n for n, _p, _c in _events(app)] == ["page.visited", "video.played", "contact.updated", "video.paused"]


def test_identify_of_a_new_user_names_the_visitor_itself(app, client, key):
    _post(client, "/v1/screen", {"anonymousId": "a-2", "name": "Home"}, key)
    _post(client, "/v1/identify", {"userId": "u-2", "anonymousId": "a-2", "traits": {"email": "cy@example.com"}}, key)
    assert _count(app, Contact) == 1
    with app.app_context():
        contact = get_session().scalar(select(Contact))
        assert (contact.external_id, contact.email) == ("u-2", "cy@example.com")
    assert [(n, p) for n, p, _c in _events(app)] == [
        ("screen.viewed", {"name": "Home"}),
        ("contact.updated", {"fields": ["email", "external_id"]}),
    ]


def test_alias_joins_an_earlier_id_to_the_user(app, client, key):
    _post(client, "/v1/track", {"anonymousId": "a-3", "event": "Signup Started"}, key)
    _post(client, "/v1/track", {"userId": "u-3", "event": "Signup Finished"}, key)
    assert _count(app, Contact) == 2
    assert _post(client, "/v1/alias", {"previousId": "a-3", "userId": "u-3"}, key).status_code == 200
    assert _count(app, Contact) == 1
    assert len({c for _n, _p, c in _events(app)}) == 1
    response = _post(client, "/v1/alias", {"userId": "u-3"}, key)
    assert response.status_code == 400 and response.json["field"] == "previousId"


def test_group_records_the_group_and_its_traits(app, client, key):
    _post(client, "/v1/group", {"userId": "u-4", "groupId": "acme", "traits": {"plan": "team"}}, key)
    assert [(n, p) for n, p, _c in _events(app)] == [("group.joined", {"group_id": "acme", "traits": {"plan": "team"}})]


# --- dedup ---


def test_a_retried_batch_stores_nothing_twice_and_a_repeat_within_a_batch_once(app, client, key):
    body = {"batch": [_track(0), _track(1), _track(0)]}
    assert _post(client, "/v1/batch", body, key).status_code == 200
    assert len(_events(app)) == 2
    again = {"batch": [_track(0), _track(1), _track(2)]}
    assert _post(client, "/v1/batch", again, key).json == {"success": True}
    assert len(_events(app)) == 3
    assert _post(client, "/v1/track", _track(2), key).status_code == 200
    assert len(_events(app)) == 3


# --- auth ---


def test_the_write_key_is_taken_from_basic_auth_a_bearer_header_or_the_body(app, client, key):
    assert _post(client, "/v1/track", _track(0), key).status_code == 200
    assert _post(client, "/v1/track", {**_track(1), "writeKey": key}).status_code == 200
    assert _post(client, "/v1/batch", {"batch": [_track(2)], "writeKey": key}).status_code == 200
    assert _post(client, "/v1/track", _track(3), headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert len(_events(app)) == 4


def test_a_missing_wrong_or_admin_only_key_is_refused(app, client, key):
    missing = _post(client, "/v1/track", _track())
    assert missing.status_code == 401 and missing.json["code"] == "missing_write_key"
    assert "HTTP Basic" in missing.json["message"]
    wrong = _post(client, "/v1/track", _track(), "nk_ingest_abcd1234_nope")
    assert wrong.status_code == 401 and wrong.json["title"] == "Invalid API key"
    garbled = _post(client, "/v1/track", _track(), headers={"Authorization": "Basic !!!"})
    assert garbled.status_code == 401 and garbled.mimetype == "application/problem+json"
    assert _post(client, "/v1/track", _track(), api_key(app, "admin")).status_code == 200  # admin may do anything
    assert len(_events(app)) == 1


# --- body forms ---


def test_text_plain_and_gzip_bodies_are_read(app, client, key):
    assert _post(client, "/v1/track", _track(0), key, content_type="text/plain").status_code == 200
    packed = gzip.compress(json.dumps({"batch": [_track(1)]}).encode())
    response = _post(client, "/v1/batch", None, key, raw=packed, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 200
    assert len(_events(app)) == 2


def test_other_media_types_and_encodings_are_refused(client, key):
    response = _post(client, "/v1/track", _track(), key, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415 and "application/json or text/plain" in response.json["detail"]
    response = _post(client, "/v1/track", _track(), key, headers={"Content-Encoding": "br"})
    assert response.status_code == 415 and "gzip" in response.json["detail"]


def test_malformed_json_and_gzip_are_400s(client, key):
    response = _post(client, "/v1/track", None, key, raw=b"{not json")
    assert response.status_code == 400 and response.json["title"] == "Malformed JSON"
    response = _post(client, "/v1/batch", None, key, raw=b"not gzip", headers={"Content-Encoding": "gzip"})
    assert response.status_code == 400 and response.json["title"] == "Malformed gzip"
    cut = gzip.compress(json.dumps({"batch": [_track()]}).encode())[:-12]
    response = _post(client, "/v1/batch", None, key, raw=cut, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 400 and "cut short" in response.json["detail"]


# --- limits ---


def test_a_zip_bomb_is_refused_by_its_unpacked_size(app, client, key):
    bomb = json.dumps({"batch": [_track()], "pad": " " * (600 * 1024)}).encode()
    packed = gzip.compress(bomb)
    assert len(packed) < 10 * 1024
    response = _post(client, "/v1/batch", None, key, raw=packed, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413 and "unpacks to more than 512000 bytes" in response.json["detail"]
    assert _events(app) == []


def test_a_body_over_500_kb_is_refused(client, key):
    body = {"batch": [_track(i, properties={"pad": "x" * 30_000}) for i in range(18)]}
    response = _post(client, "/v1/batch", body, key)
    assert response.status_code == 413 and "500 KB" in response.json["detail"]


def test_a_message_over_32_kb_is_refused_naming_it(app, client, key):
    body = {"batch": [_track(0), _track(1, properties={"pad": "x" * 33_000})]}
    response = _post(client, "/v1/batch", body, key)
    assert response.status_code == 413 and response.json["field"] == "batch[1]"
    assert "32 KB" in response.json["message"]
    response = _post(client, "/v1/track", _track(2, properties={"pad": "x" * 33_000}), key)
    assert response.status_code == 413
    assert _events(app) == []


def test_a_batch_over_2500_messages_is_refused(app, client, key):
    body = {"batch": [{"type": "track", "userId": "u", "event": "A B"}] * 2501}
    response = _post(client, "/v1/batch", body, key)
    assert response.status_code == 413 and "at most 2500 messages, got 2501" in response.json["detail"]
    body = {"batch": [{"type": "track", "userId": "u", "event": "A B"}] * 2500}
    assert _post(client, "/v1/batch", body, key).status_code == 200
    assert len(_events(app)) == 2500


@pytest.mark.parametrize(
    ("message", "field", "words"),
    [
        ({"type": "track", "event": "A B"}, "batch[0].userId", "needs batch[0].userId or batch[0].anonymousId"),
        ({"type": "track", "userId": "u"}, "batch[0].event", "must be a string"),
        ({"type": "jump", "userId": "u"}, "batch[0].type", "must be one of track"),
        ({"type": "track", "userId": "u", "event": "2FA On"}, "batch[0].event", "NUDGE_SEGMENT_EVENT_MAP"),
        ({"type": "track", "userId": {"a": 1}, "event": "A B"}, "batch[0].userId", "must be a string"),
        ({"type": "track", "userId": "u", "event": "A B", "timestamp": "yesterday"}, "batch[0].timestamp", ""),
        ({"type": "track", "userId": "u", "event": "A B", "properties": []}, "batch[0].properties", "object"),
        ({"type": "track", "userId": "u", "event": "A B", "properties": {"n": 2**70}}, "batch[0].properties.n", ""),
        ({"type": "identify", "userId": "u", "traits": {"email": "nope"}}, "batch[0].traits.email", ""),
        ({"type": "group", "userId": "u"}, "batch[0].groupId", "needs batch[0].groupId"),
        ({"type": "identify", "traits": {}}, "batch[0].userId", "an identify needs batch[0].userId or"),
        # a group's traits are stored in its event's props: PostgreSQL's JSONB refuses a NUL (it was a 500)
        ({"type": "group", "userId": "u", "groupId": "g", "traits": {"a\x00": 1}}, "batch[0].traits", "NUL"),
        ({"type": "group", "anonymousId": "v", "groupId": "g", "traits": {"n": "\x00"}}, "batch[0].traits.n", "NUL"),
        ({"type": "page", "userId": "u", "name": "Home\x00"}, "batch[0].name", "NUL"),
    ],
)
def test_a_bad_message_is_a_400_naming_its_field_and_stores_nothing(app, client, key, message, field, words):
    response = _post(client, "/v1/batch", {"batch": [message, _track(9)]}, key)
    assert response.status_code == 400, response.json
    assert response.json["field"] == field and words in response.json["detail"]
    assert response.json["message"] == response.json["detail"]
    assert _events(app) == []


def test_a_batch_must_be_a_list(client, key):
    response = _post(client, "/v1/batch", {"messages": []}, key)
    assert response.status_code == 400 and response.json["field"] == "batch"


# --- overload ---


def test_a_long_queue_is_answered_429_with_retry_after(app, client, key):
    app.config["INGEST_MAX_QUEUE"] = 2
    for i in range(3):  # each request's event waits for the engine (no worker runs here)
        assert _post(client, "/v1/track", _track(i), key).status_code == 200
        app.extensions.pop("nudge.segment.queue", None)  # look at the queue again at once (not a second later)
    busy = _post(client, "/v1/track", _track(3), key)
    assert busy.status_code == 429 and busy.headers["Retry-After"] == "10"
    assert busy.json["code"] == "too_busy"
    assert len(_events(app)) == 3
    run_worker(app)  # the engine catches up: the events no longer wait
    app.extensions.pop("nudge.segment.queue", None)
    assert _post(client, "/v1/track", _track(3), key).status_code == 200


def test_the_same_batch_sent_at_once_by_many_threads_is_stored_once(app, key):
    """As waitress's threads would take a client's retry while the first attempt is still being written."""
    body = json.dumps({"batch": [_track(i, userId=f"u-{i}") for i in range(20)]}).encode()
    start = threading.Barrier(8)

    def post(_i):
        start.wait()
        response = _post(app.test_client(), "/v1/batch", None, key, raw=body)
        return response.status_code, response.json

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(8)))
    assert answers == [(200, {"success": True})] * 8
    assert len(_events(app)) == 20 and _count(app, Contact) == 20
