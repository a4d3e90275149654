"""Anonymous ids (Segment's ``anonymousId``): which contact a visitor not yet identified is, and stays after."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import NEVER_REUSE_IDS, Base, UTCDateTime, utcnow


class AnonymousId(Base):
    """An analytics client's anonymous id and the contact its events belong to.

    Before an ``identify`` the contact is a visitor with no email or external id; the ``identify`` names it (or
    merges it into the contact it names, which takes this row along), so the visitor's earlier events and later
    anonymous ones belong to the identified contact.
    """

    __tablename__ = "anonymous_ids"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    anonymous_id: Mapped[str] = mapped_column(String(255), unique=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
