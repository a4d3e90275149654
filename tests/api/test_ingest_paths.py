"""The fast ingest paths (issue #12, point 1): events stored set-wise, concurrent requests written and handed to
the engine together, each request still validated,
committed before its 202, all or nothing, its events processed exactly once."""

import functools
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select, update

from server.api.idempotency import body_digest
from server.contacts.service import clean_contact
from server.db import get_session
from server.engine import wal_checkpoints
from server.engine.groups import Grouped, _write_group
from server.engine.ingest import _known_identity, _writers, prepare_events
from server.engine.once import Answered, Once, Reused
from server.models import ApiKey, Contact, Event, IdempotencyRecord

from ..helpers import api_key, run_worker


def _count(app, model):
    with app.app_context():
        return get_session().scalar(select(func.count(model.id)))


def _contacts(app):
    with app.app_context():
        return {c.id: (c.email, c.external_id) for c in get_session().scalars(select(Contact))}


def _queued_jobs(app):
    """The functions of the jobs waiting on the engine queue (the real Redis)."""
    return [job.func_name for job in app.extensions["nudge.queue"].queue.get_jobs()]


def test_batch_resolves_new_and_known_contacts_in_order(app, ingest):
    known = ingest.post("/events", json={"contact": {"external_id": "crm-1"}, "event": "page.visited"}).json
    body = {
        "events": [
            {"contact": {"email": "new@example.com"}, "event": "a.b"},
            {"contact": {"external_id": "crm-1"}, "event": "a.b"},
            {"contact": {"email": "NEW@example.com"}, "event": "a.b"},  # the contact made two lines up
            {"contact": {"external_id": "crm-2", "email": "two@example.com"}, "event": "a.b"},
            {"contact": {"external_id": "crm-2"}, "event": "a.b"},
            {"contact": {"email": "two@example.com", "external_id": "crm-2"}, "event": "a.b", "props": {"n": 1}},
        ]
    }
    response = ingest.post("/events/batch", json=body)
    assert response.status_code == 202, response.json
    ids, contact_ids = response.json["ids"], response.json["contact_ids"]
    assert ids == sorted(ids) and len(set(ids)) == 6
    new, crm2 = contact_ids[0], contact_ids[3]
    assert contact_ids == [new, known["contact_id"], new, crm2, crm2, crm2]
    assert _contacts(app) == {
        known["contact_id"]: (None, "crm-1"),
        new: ("new@example.com", None),
        crm2: ("two@example.com", "crm-2"),
    }
    with app.app_context():
        stored = get_session().scalars(select(Event).where(Event.id.in_(ids)).order_by(Event.id)).all()
        assert [e.contact_id for e in stored] == contact_ids
        assert stored[-1].props == {"n": 1} and stored[0].props == {} and stored[0].source == "api"


def test_batch_that_writes_to_a_contact_goes_event_by_event(app, ingest):
    first = ingest.post("/events", json={"contact": {"email": "ann@example.com"}, "event": "a.b"}).json
    body = {
        "events": [
            {"contact": {"email": "ann@example.com", "external_id": "crm-9"}, "event": "a.b"},  # attaches crm-9
            {"contact": {"external_id": "crm-9", "first_name": "Ann"}, "event": "a.b"},
        ]
    }
    response = ingest.post("/events/batch", json=body)
    assert response.status_code == 202, response.json
    assert response.json["contact_ids"] == [first["contact_id"]] * 2
    with app.app_context():
        ann = get_session().get(Contact, first["contact_id"])
        assert (ann.external_id, ann.first_name) == ("crm-9", "Ann")


def test_batch_error_names_the_first_failing_event_and_stores_nothing(app, ingest):
    ingest.post("/events", json={"contact": {"email": "taken@example.com"}, "event": "a.b"})
    ingest.post("/events", json={"contact": {"external_id": "crm-5"}, "event": "a.b"})
    body = {
        "events": [
            {"contact": {"email": "fresh@example.com"}, "event": "a.b"},
            {"contact": {"external_id": "crm-5", "email": "taken@example.com"}, "event": "a.b"},  # a clash
            {"contact": {"email": "not an address"}, "event": "a.b"},
        ]
    }
    response = ingest.post("/events/batch", json=body)
    assert response.status_code == 409 and response.json["field"] == "events[1].contact.email"
    assert _count(app, Event) == 2 and _count(app, Contact) == 2


def test_concurrent_requests_each_get_their_own_answer_and_share_one_job(app):
    """16 threads post at once through one app (as waitress's threads do): 15 valid events, one invalid."""
    key = api_key(app, "ingest")
    start = threading.Barrier(16)

    def post(i):
        body = {"contact": {"email": f"c{i % 5}@example.com"}, "event": "form.submitted", "props": {"i": i}}
        if i == 7:
            body["contact"]["email"] = "nope"
        start.wait()
        response = app.test_client().post("/api/v1/events", json=body, headers={"Authorization": f"Bearer {key}"})
        return i, response.status_code, response.json

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(post, range(16)))
    assert [status for i, status, _ in answers if i != 7] == [202] * 15
    assert answers[7][1] == 422 and answers[7][2]["field"] == "contact.email"
    ids = [body["id"] for i, _status, body in answers if i != 7]
    assert len(set(ids)) == 15
    with app.app_context():
        stored = dict(get_session().execute(select(Event.id, Event.props)).all())
    assert sorted(stored) == sorted(ids)
    assert {stored[body["id"]]["i"] for i, _s, body in answers if i != 7} == set(range(16)) - {7}
    assert _count(app, Contact) == 5
    assert _queued_jobs(app) == ["server.engine.wake.process_pending"]  # one job for the burst
    run_worker(app)
    with app.app_context():
        processed = get_session().scalars(select(Event.id).where(Event.processed_at.is_not(None))).all()
    assert sorted(processed) == sorted(ids)  # each stored event processed, once (a claim marks it)


def _post_at_once(app, bodies, headers):
    """Post each of *bodies* (with ``headers(i)``) from a thread of its own, all at once."""
    key = api_key(app, "ingest")
    start = threading.Barrier(len(bodies))

    def post(i):
        start.wait()
        auth = {"Authorization": f"Bearer {key}", **headers(i)}
        response = app.test_client().post("/api/v1/events", json=bodies[i], headers=auth)
        return response.status_code, response.json, response.headers.get("Idempotent-Replayed")

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(post, range(len(bodies))))


def _new_contact(i):
    return {"contact": {"email": f"new{i % 2}@example.com"}, "event": "form.submitted", "props": {"k": i % 4}}


def test_keyed_requests_naming_one_new_contact_at_once_are_each_stored_once(app):
    """With Idempotency-Keys each request writes alone, at once on PostgreSQL: two naming one new contact both
    insert it, and the second waits for the first, then clashes. It is tried again, finding the contact (a 409
    before); a request whose key was used meanwhile answers as that one did."""
    answers = _post_at_once(app, [_new_contact(i) for i in range(8)], lambda i: {"Idempotency-Key": f"k-{i % 4}"})
    assert [status for status, _body, _replayed in answers] == [202] * 8, answers
    for k in range(4):  # each key's two requests: one stored, the other given its answer
        first, second = answers[k], answers[k + 4]
        assert first[1] == second[1] and sorted([first[2], second[2]], key=str) == [None, "true"]
    assert _count(app, Event) == 4 and _count(app, Contact) == 2


def _keyed(api_key_id, key, body):
    """A single-event post made once with *key*, as the API prepares it; its answer names its event's id."""
    digest = body_digest(body)
    once = Once(api_key_id, key, "POST /api/v1/events", digest, 202, lambda stored: {"id": stored[0][0]})
    return prepare_events(None, [body], prefix=lambda i: "")._replace(once=once)


def test_a_group_of_new_keys_stores_each_answer_for_its_retries(app, ingest):
    """New keys of a group are stored with the other requests' events (on SQLite in the ingest's own transaction),
    each with its answer: a retry through the API gets that answer."""
    bodies = [_new_contact(i) for i in range(3)]
    assert ingest.post("/events", json=bodies[2]).status_code == 202  # (the API key's use noted)
    with app.app_context():
        key_id = get_session().scalar(select(ApiKey.id))
        group = [
            _keyed(key_id, "a", bodies[0]),
            prepare_events(None, [bodies[2]], prefix=str),
            _keyed(key_id, "b", bodies[1]),
        ]
        first, plain, second = _write_group(group)
    assert isinstance(plain, list) and len(plain) == 1
    for key, body, outcome in (("a", bodies[0], first), ("b", bodies[1], second)):
        assert isinstance(outcome, Answered) and not outcome.replayed and len(outcome.stored) == 1
        assert outcome.answer == (202, {"id": outcome.stored[0][0]})
        again = ingest.post("/events", json=body, headers={"Idempotency-Key": key})
        assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
        assert again.json == {"id": outcome.stored[0][0]}
    assert _count(app, Event) == 4 and _count(app, IdempotencyRecord) == 2


def test_one_group_stores_each_key_once_and_answers_its_repeats_from_it(app, ingest):
    """Keyed requests written in one group (as concurrent posts are): a key is looked up once for the group; a
    repeat of a key the group stores gets that answer, a reuse with another body is refused, and keys answered
    before are answered so again; the new ones are stored with the plain requests' events."""
    endpoint = "POST /api/v1/events"
    body = _new_contact(0)
    stored_before = ingest.post("/events", json=body, headers={"Idempotency-Key": "old"})
    assert ingest.post("/events", json=body, headers={"Idempotency-Key": "old-2"}).status_code == 202
    with app.app_context():
        key_id = get_session().scalar(select(ApiKey.id))
        keyed = functools.partial(_keyed, key_id)
        other = {**body, "props": {"k": "other"}}
        group = [
            keyed("new", body),  # stored
            prepare_events(None, [body], prefix=lambda i: ""),  # plain: stored
            keyed("new", body),  # the same request again: the first's answer
            keyed("new", other),  # the key again, another body: refused
            keyed("old", body),  # answered before
            keyed("old-2", other),  # answered before, for another body: refused
        ]
        outcomes = _write_group(group)
    first, plain, repeat, reused, old, old_reused = outcomes
    assert isinstance(first, Answered) and not first.replayed and first.answer == (202, {"id": first.stored[0][0]})
    assert isinstance(plain, list) and len(plain) == 1
    assert repeat == Answered(first.answer, [], True)
    assert isinstance(reused, Reused) and reused.endpoint == endpoint
    assert old == Answered((202, stored_before.json), [], True)
    assert isinstance(old_reused, Reused)
    assert _count(app, Event) == 4 and _count(app, IdempotencyRecord) == 3


def test_grouped_work_gathers_while_the_leader_works_and_errors_stay_with_their_request():
    entered, release = threading.Event(), threading.Event()
    groups = []

    def run(items):
        groups.append(list(items))
        if len(groups) == 1:
            entered.set()
            release.wait(10)
        return [ValueError(f"bad {i}") if i < 0 else i * 10 for i in items]

    grouped = Grouped(run)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(grouped.submit, 1)
        assert entered.wait(10)
        later = [pool.submit(grouped.submit, i) for i in (2, -3, 4)]
        while len(grouped._pending) < 3:  # the three wait behind the leader
            threading.Event().wait(0.001)
        release.set()
        assert first.result(10) == 10
        assert later[0].result(10) == 20 and later[2].result(10) == 40
        with pytest.raises(ValueError, match="bad -3"):
            later[1].result(10)
    assert groups[0] == [1] and sorted(groups[1]) == [-3, 2, 4]


def test_a_failing_group_fails_each_of_its_requests_and_the_next_group_runs():
    calls = []

    def run(items):
        calls.append(items)
        if len(calls) == 1:
            raise RuntimeError("database went away")
        return items

    grouped = Grouped(run)
    with pytest.raises(RuntimeError, match="went away"):
        grouped.submit(1)
    assert grouped.submit(2) == 2


def test_the_key_look_up_waits_for_no_writer(app, client):
    """While another connection holds a write transaction (on SQLite: the database's one write lock), a request is
    authenticated and answered; before, the look-up queued for the lock (for up to the 30 s busy timeout)."""
    key = api_key(app, "ingest")
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/v1/contacts", headers=headers).status_code == 403  # notes the key's use now
    with app.extensions["nudge.db"].engine.connect() as writer:
        writer.execute(update(Contact).where(Contact.id == 0).values(score=1))  # the write lock, held
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(lambda: app.test_client().get("/api/v1/contacts", headers=headers))
            response = answer.result(timeout=10)
        writer.rollback()
    assert response.status_code == 403 and "scope" in response.json["detail"]


@pytest.mark.sqlite
def test_the_writer_leaves_checkpoints_to_a_thread_of_their_own(app, ingest, database_url, monkeypatch):
    """The events of batches reach the database file through the checkpointer's thread: the ingest's writer no
    longer copies the WAL back inside its write turn while the next requests wait (SQLite's autocheckpoint did,
    every ~1,000 pages, 5-25 ms by the clock)."""
    monkeypatch.setattr(wal_checkpoints, "CHECKPOINT_PAGES", 100)
    path = database_url.removeprefix("sqlite:///")
    body = {"events": [{"contact": {"email": f"c{i}@example.com"}, "event": "a.b"} for i in range(100)]}
    assert ingest.post("/events/batch", json=body).status_code == 202
    writer, checkpoints = _writers[app.extensions["nudge.db"].engine]
    assert checkpoints.ran.wait(timeout=30)
    assert writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == wal_checkpoints.WRITER_AUTOCHECKPOINT
    file_only = sqlite3.connect(f"file:{path}?immutable=1", uri=True)  # the database file, not the WAL
    try:
        assert file_only.execute("SELECT count(*) FROM events").fetchone()[0] == 100
    finally:
        file_only.close()


@pytest.mark.parametrize(
    ("given", "cached"),
    [
        ({"email": "Ann@Example.COM"}, True),
        ({"email": "  ann@example.com "}, True),
        ({"email": "ann@bücher.example"}, True),
        ({"external_id": " crm-1 "}, True),
        ({"external_id": "crm-1", "email": "a@b.example"}, True),
        ({"email": "not an address"}, False),  # invalid: clean_contact words the error
        ({"email": ""}, False),
        ({"email": "a\x00@b.example"}, False),
        ({"external_id": ""}, False),
        ({"external_id": 12}, False),  # not text
        ({"email": "a@b.example", "first_name": "Ann"}, False),  # more than an identity
    ],
)
def test_an_identity_known_from_an_earlier_event_is_cleaned_as_before(given, cached):
    """The ingest's cache of cleaned emails and external ids answers as :func:`clean_contact` does, or leaves the
    contact (and its error) to it."""
    for _ in range(2):  # the second time from the cache
        known = _known_identity(given)
        assert (known is not None) == cached
        if cached:
            assert known == clean_contact(None, given, prefix="contact.")  # type: ignore[arg-type]
