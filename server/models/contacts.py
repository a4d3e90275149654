"""Contacts and their tags."""

from __future__ import annotations

import base64
import secrets
import time
from datetime import datetime
from typing import Any

from sqlalchemy import Computed, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dsl import BUILTIN_CONTACT_FIELDS

from .base import NEVER_REUSE_IDS, Base, JsonType, UTCDateTime, utcnow

#: what the admin UI's name search reads: the full name, then the last name alone, in the database's lower case,
#: computed by the database (so every write path keeps them right) and indexed for prefix search with keyset pages.
#: Stored on PostgreSQL; on SQLite migration 0015 adds them VIRTUAL (ALTER TABLE cannot add stored ones): the
#: indexes hold the values either way.
NAME_KEY = "lower(trim(coalesce(first_name, '') || ' ' || coalesce(last_name, '')))"
LAST_NAME_KEY = "lower(last_name)"
#: the rows of the phone index (migration 0043)
HAS_PHONE = "phone IS NOT NULL"


#: the URL-safe characters in ASCII order: a number written with them sorts as text as it does as a number
_ORDERED = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
#: random bytes in a public id (96 bits: 16 URL-safe characters)
PUBLIC_ID_RANDOM = 12


def new_public_ids(count: int) -> list[str]:
    """*count* identifiers for contacts' public links, never derived from the row id: the time in milliseconds
    (8 characters that sort as the time does) and 96 random bits (16 characters), URL-safe; 24 characters.

    What makes a link unguessable is the random part (and the link's signature); the time in front makes a new
    contact's id land at the end of the unique index instead of on a random page of it: ~5 µs less a row for an
    import of new contacts into SQLite, whose index pages stay few and warm. The id shows when the contact was
    made to whoever holds one of their links.
    """
    stamp, when = "", time.time_ns() // 1_000_000
    for _ in range(8):
        when, digit = divmod(when, 64)
        stamp = _ORDERED[digit] + stamp
    raw = secrets.token_bytes(PUBLIC_ID_RANDOM * count)
    encode, size = base64.urlsafe_b64encode, PUBLIC_ID_RANDOM
    return [stamp + encode(raw[i : i + size]).decode("ascii") for i in range(0, size * count, size)]


def new_public_id() -> str:
    """One identifier for a contact's public links (see :func:`new_public_ids`)."""
    return new_public_ids(1)[0]


def byte_ordered(length: int) -> Any:
    """``String(length)``, in PostgreSQL's "C" collation: ordered by code point whatever the database's locale, so
    that "starts with" is a range an index answers (:func:`server.contact_search.starts_with`)."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


#: how full PostgreSQL fills the contacts' pages, in percent (migration 0044)
FILLFACTOR = 70


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (
        # the contacts with a number only (migration 0043): most have none, and an entry for each of them cost
        # every insert of a contact an index write; "phone = ?", "IN" and "starts with" imply a number
        Index("ix_contacts_phone", "phone", sqlite_where=text(HAS_PHONE), postgresql_where=text(HAS_PHONE)),
        # PostgreSQL: room on each page for a row's next version, so that moving last_seen or the score (neither
        # indexed) writes no index entry (a heap-only tuple; migration 0044)
        {**NEVER_REUSE_IDS, "postgresql_with": {"fillfactor": FILLFACTOR}},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: what signed links (unsubscribe, preferences, confirmation, tracking) name the contact by: random, so a
    #: link made for an erased person never opens another's page, whatever ids the database hands out
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    external_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    #: on PostgreSQL in the "C" collation (code point order, as SQLite's): a prefix search is one index range
    email: Mapped[str | None] = mapped_column(byte_ordered(320), unique=True)
    phone: Mapped[str | None] = mapped_column(byte_ordered(32))
    first_name: Mapped[str | None] = mapped_column(String(255))
    last_name: Mapped[str | None] = mapped_column(String(255))
    timezone: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(32))
    stage: Mapped[str | None] = mapped_column(String(64))
    score: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    fields: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime)
    name_key: Mapped[str | None] = mapped_column(String(511), Computed(NAME_KEY, persisted=True), index=True)
    last_name_key: Mapped[str | None] = mapped_column(String(255), Computed(LAST_NAME_KEY, persisted=True), index=True)

    tags: Mapped[list[ContactTag]] = relationship(back_populates="contact", cascade="all, delete-orphan")

    def __repr__(self) -> str:
        return f"<Contact {self.id}>"


#: the built-in contact fields of the rules' vocabulary kept in the contact's own columns (the others, ``birthday``,
#: live in its ``fields`` JSON)
BUILTIN_COLUMNS = frozenset(BUILTIN_CONTACT_FIELDS) & frozenset(Contact.__table__.c.keys())


class ContactTag(Base):
    __tablename__ = "contact_tags"
    #: contacts with a tag, in contact order: a keyset page of a tag's contacts reads only that page
    __table_args__ = (Index("ix_contact_tags_tag_contact", "tag", "contact_id"),)

    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(128), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    contact: Mapped[Contact] = relationship(back_populates="tags")
