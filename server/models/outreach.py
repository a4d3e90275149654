"""What the admin UI's Forms and Broadcasts areas keep: each form submission, and each broadcast sent or scheduled."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import NEVER_REUSE_IDS, Base, JsonType, UTCDateTime, utcnow


class FormSubmission(Base):
    """One sign-up through a hosted form: pending until confirmed (double opt-in), or confirmed at once.

    ``wording`` is the consent text the person saw when they submitted; confirming records that text in the
    consent ledger, even if the form's wording changed meanwhile. ``held`` is what a double opt-in sign-up changes
    of the contact once confirmed (:func:`server.forms.held_changes`): cleared then, or by the cleanup a week on,
    when its link has expired (personal data: an erased contact takes its submissions with it).
    """

    __tablename__ = "form_submissions"
    __table_args__ = (Index("ix_form_submissions_form", "form_id", "id"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    form_id: Mapped[int] = mapped_column(ForeignKey("forms.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    wording: Mapped[str] = mapped_column(Text, default="")
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: the sign-up's tracking extras (``utm_*``), for the ``form.submitted`` event its confirmation records
    extra: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    #: a double opt-in sign-up's changes to the contact, made when it is confirmed (None: none, or made)
    held: Mapped[dict[str, Any] | None] = mapped_column(JsonType)


class BroadcastRecord(Base):
    """A broadcast made in the admin UI (or scheduled there): what it sends to whom, and from when.

    Its messages are the outbox rows keyed ``broadcast:<ident>:<contact>`` (:mod:`server.engine.broadcast`);
    their statuses are its progress.
    """

    __tablename__ = "broadcasts"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    ident: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    channel: Mapped[str] = mapped_column(String(64))
    template: Mapped[str] = mapped_column(String(255))
    segment: Mapped[str] = mapped_column(String(128))
    #: when its messages become due (the engine's clock); now for "send now"
    send_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    members: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
