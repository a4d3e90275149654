"""Who a broadcast would reach: the segment's members the send-time policy lets through, counted by the database.

The policy (:func:`server.engine.policy.blocker`) is asked per message when it is sent; here its rules are the
same, set-wise: the channel's address field is filled in, the consent ledger's latest row for the channel lets it
through (:func:`server.engine.policy.consent_clause`: the policy's own rule as SQL, a channel named in
``CONSENT_REQUIRED`` needing an opt-in), and the address is not on the suppression list. The list holds salted
hashes the database cannot compute, so when the channel has suppressed addresses the addresses left are hashed as
they stream from one query (no contact objects). The frequency cap and quiet hours depend on the moment of each
send: they hold or defer messages then, as for rules, and are not counted here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ...consent import address_hash
from ...contacts import InvalidInput
from ...engine.policy import consent_clause, consent_rule
from ...models import Contact, Segment, Suppression
from ...sdk import CONSENT_GRANTED
from ...segments import compile_condition, members_clause
from ...sqlwhere import Unsupported


@dataclass(frozen=True)
class Audience:
    """A segment's members on a channel: all of them, and those the policy lets through (None: not countable)."""

    members: int | None
    reachable: int | None
    problem: str | None = None
    #: the channel needs an opt-in (it declares so, or ``CONSENT_REQUIRED`` names it): who has none is not counted
    needs_opt_in: bool = False


def audience(session: Session, channel: str, segment: str, now: dt.datetime) -> Audience:
    """Count *segment*'s members, and those a message on *channel* may reach now (before cap and quiet hours)."""
    text = session.scalar(select(Segment.condition).where(Segment.name == segment))
    cls = current_app.extensions["nudge.plugins"].channels.get(channel)
    if text is None or cls is None:
        return Audience(None, None, f"there is no segment {segment!r}" if text is None else f"no channel {channel!r}")
    try:
        clause = members_clause(session, compile_condition(session, text).tree, now)
    except (InvalidInput, Unsupported):
        return Audience(None, None, "the database cannot count this segment; its members are found when it is sent")
    members = session.scalar(select(func.count(Contact.id)).where(clause)) or 0
    field = getattr(cls, "address_field", None)
    if field is None:
        return Audience(members, members)
    address = getattr(Contact, field)
    allowed = [clause, address.is_not(None), address != ""]
    consented = consent_clause(cls, channel, current_app.config)
    if consented is not None:
        allowed.append(consented)
    opt_in = consent_rule(cls, channel, current_app.config) == CONSENT_GRANTED
    suppressed = set(session.scalars(select(Suppression.address_hash).where(Suppression.channel == channel)))
    if not suppressed:
        return Audience(members, session.scalar(select(func.count(Contact.id)).where(*allowed)) or 0, None, opt_in)
    secret = current_app.config["SECRET_KEY"]
    rows = session.execute(select(address).where(*allowed).execution_options(yield_per=5000)).scalars()
    reachable = sum(1 for value in rows if address_hash(secret, channel, value) not in suppressed)
    return Audience(members, reachable, None, opt_in)


__all__ = ["Audience", "audience"]
