"""The consent rule is stated once (server.engine.policy): the outbox's per-message check (``blocker``) and the
set-wise clause a broadcast's audience counts with (``consent_clause``) let the same contacts through, for every
consent history and every kind of channel, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from server.consent import record_consent
from server.db import get_session
from server.engine.policy import blocker, consent_clause
from server.models import Contact
from server.sdk import CONSENT_GRANTED, CONSENT_UNLESS_REVOKED, Channel

#: a contact's ledger on the channel, oldest first: True an opt-in, False an opt-out (one second apart)
HISTORIES = {
    "nothing recorded": (),
    "granted": (True,),
    "revoked": (False,),
    "granted, then revoked": (True, False),
    "revoked, then granted": (False, True),
    "granted twice": (True, True),
}
#: the histories each kind of channel lets through
LETS_THROUGH = {
    CONSENT_UNLESS_REVOKED: {"nothing recorded", "granted", "revoked, then granted", "granted twice"},
    CONSENT_GRANTED: {"granted", "revoked, then granted", "granted twice"},
    None: set(HISTORIES),
}


def kind(consent: str | None) -> type[Channel]:
    return type("Kind", (Channel,), {"name": f"k_{consent}", "address_field": "email", "consent": consent})


@pytest.mark.parametrize("consent", [CONSENT_UNLESS_REVOKED, CONSENT_GRANTED, None])
def test_the_outbox_and_the_audience_let_the_same_contacts_through(app, consent):
    cls = kind(consent)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    with app.app_context():
        session = get_session()
        ids = {}
        for number, (history, opt_ins) in enumerate(HISTORIES.items()):
            contact = Contact(email=f"c{number}@example.com", fields={})
            session.add(contact)
            session.flush()
            ids[contact.id] = history
            for second, granted in enumerate(opt_ins):
                record_consent(session, contact.id, cls.name, granted, "test", at=start + timedelta(seconds=second))
        session.commit()

        one_by_one = {
            ids[row.id]
            for row in session.scalars(select(Contact))
            if blocker(
                session,
                app.config,
                {cls.name: cls},
                cls.name,
                contact_id=row.id,
                address=row.email,
                now=0,
                marketing=False,
            )
            is None
        }
        clause = consent_clause(cls, cls.name)
        query = select(Contact.id) if clause is None else select(Contact.id).where(clause)
        set_wise = {ids[contact_id] for contact_id in session.scalars(query)}
    assert one_by_one == set_wise == LETS_THROUGH[consent]
