"""A claimed batch reads its contacts as rows of their columns, not as ORM objects: everything that reads a contact on
the way out (the policy, the templates, the links, the channel's address) sees what the object would have given it."""

from __future__ import annotations

from sqlalchemy import select

from server.db import get_session
from server.engine.outbox import Delivery
from server.engine.outbox_handoff import _read_columns
from server.engine.render import ContactRow, contact_data
from server.engine.staff import recipient
from server.models import Contact

#: what each reader asks of a contact of the batch
READ = ("id", "public_id", "email", "phone", "first_name", "last_name", "external_id", "stage", "score", "timezone")


def test_a_batch_reads_its_contacts_as_rows_that_answer_as_the_objects_do(app):
    with app.app_context():
        session = get_session()
        full = Contact(
            email="ann@example.com",
            phone="+15550100",
            first_name="Ann",
            last_name="Lee",
            external_id="crm-1",
            stage="lead",
            score=7,
            timezone="Europe/Paris",
            locale="fr",
            fields={"plan": "pro", "seats": 3, "tags": ["a", {"b": None}], "first_name": "shadowed"},
        )
        bare = Contact(email="bob@example.com", fields={})
        session.add_all([full, bare])
        session.commit()
        with Delivery(session, app) as delivery:
            rows = delivery._contacts({full.id, bare.id})
        session.commit()
        session.expire_all()  # the objects as a load reads them (PostgreSQL orders a JSON object's keys its own way)
        for contact in (full, bare):
            row = rows[contact.id]
            assert type(row) is ContactRow
            assert contact_data(row) == contact_data(contact)
            assert list(contact_data(row)) == list(contact_data(contact))  # the same order: templates may loop
            assert {name: getattr(row, name) for name in READ} == {name: getattr(contact, name) for name in READ}
            for field in ("email", "phone", None):
                assert recipient(_Msg(), row, field) == recipient(_Msg(), contact, field)


class _Msg:
    data: dict = {}


def test_a_channel_addressing_contacts_by_what_is_not_a_column_gets_the_orm_objects():
    assert _read_columns(frozenset({"email", "tags"})) is None  # a relationship: the object answers it
    columns = _read_columns(frozenset({"email", "phone", "external_id", None}))
    assert columns is not None and columns[0] is Contact.id
    assert [c.key for c in columns].count("external_id") == 1
    # a name the model does not have is no column to read: the row lacks it, as getattr(contact, name, None) expects
    assert "fax" not in [c.key for c in _read_columns(frozenset({"fax"})) or ()]


def test_no_contact_to_read_reads_nothing(app):
    with app.app_context():
        session = get_session()
        session.add(Contact(email="c@example.com", fields={}))
        session.commit()
        ids = set(session.scalars(select(Contact.id)))
        with Delivery(session, app) as delivery:
            assert delivery._contacts(set()) == {}
            assert sorted(delivery._contacts(ids | {max(ids) + 1})) == sorted(ids)  # one erased since: not there
