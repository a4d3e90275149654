"""PostgreSQL: a request that names a new contact which another transaction is inserting at that moment waits for
it, then clashes with it; the request is tried again and finds that contact, where it was answered 409 before.

SQLite writes one transaction at a time, so there is no such moment there. Here the other transaction is held open
by the test, and committed once the request waits for it (seen in ``pg_stat_activity``)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from server.contacts.service import upsert_contact
from server.db import get_db, get_session
from server.models import Contact, Event

from ..faults.journey import wait_until
from ..helpers import api_key

pytestmark = pytest.mark.postgresql


@pytest.fixture
def database_url(postgres_server):
    return postgres_server.new_database(f"clash_{uuid.uuid4().hex[:8]}")


class Held:
    """A transaction of its own that has inserted a contact and not committed."""

    def __init__(self, app, email: str):
        self.session = Session(get_db(app).engine)
        upsert_contact(self.session, {"email": email})
        self.session.flush()
        self.pid = self.session.scalar(text("SELECT pg_backend_pid()"))

    def waited_for(self, app) -> bool:
        """Whether another session waits for this transaction now."""
        with get_db(app).engine.connect() as connection:
            return bool(
                connection.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND :pid = ANY(pg_blocking_pids(pid))"
                    ),
                    {"pid": self.pid},
                )
            )

    def commit_once_waited_for(self, app) -> None:
        wait_until(lambda: self.waited_for(app), 10, lambda: "the request never waited for the held contact")
        self.session.commit()
        self.session.close()


def _in_thread(post: Callable[[], object]) -> Callable[[], object]:
    """Run *post* in a thread of its own; the returned function waits for and returns its answer."""
    out: list[object] = []
    thread = threading.Thread(target=lambda: out.append(post()))
    thread.start()

    def answer():
        thread.join(30)
        return out[0]

    return answer


def _post(app, path, body, **headers):
    key = api_key(app)
    return lambda: app.test_client().post(path, json=body, headers={"Authorization": f"Bearer {key}", **headers})


def _stored(app):
    with app.app_context():
        session = get_session()
        contacts = dict(session.execute(select(Contact.email, Contact.id)).all())
        return contacts, session.scalar(select(func.count(Event.id)))


def test_a_keyed_request_naming_a_contact_being_inserted_is_accepted_with_that_contact(app):
    held = Held(app, "new@example.com")
    body = {"contact": {"email": "new@example.com"}, "event": "form.submitted"}
    answer = _in_thread(_post(app, "/api/v1/events", body, **{"Idempotency-Key": "k-1"}))
    held.commit_once_waited_for(app)
    response = answer()
    assert response.status_code == 202, response.json
    contacts, events = _stored(app)
    assert response.json["contact_id"] == contacts["new@example.com"] and (len(contacts), events) == (1, 1)


def test_a_request_meeting_two_contacts_being_inserted_one_after_the_other_is_accepted(app):
    """Without a key the request's events are stored with its group's, set-wise; a clash there sends each request
    of the group to a savepoint of its own, where it may meet a second transaction's contact: tried again."""
    first, second = Held(app, "a@example.com"), Held(app, "b@example.com")
    emails = ("a@example.com", "b@example.com")
    body = {"events": [{"contact": {"email": email}, "event": "form.submitted"} for email in emails]}
    answer = _in_thread(_post(app, "/api/v1/events/batch", body))
    first.commit_once_waited_for(app)  # the group's insert clashes with a@; its request alone in a savepoint,
    second.commit_once_waited_for(app)  # finds a@ and waits for b@, then clashes with it
    response = answer()
    assert response.status_code == 202, response.json
    contacts, events = _stored(app)
    assert response.json["contact_ids"] == [contacts["a@example.com"], contacts["b@example.com"]] and events == 2
