"""Who may use Nudge: admin users (web) and API keys (machines)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import NEVER_REUSE_IDS, Base, UTCDateTime, utcnow


class Scope(str, enum.Enum):
    INGEST = "ingest"  # send events and upsert contacts
    ADMIN = "admin"  # everything


class Role(str, enum.Enum):
    """What a signed-in person may do in the admin UI; each role can do everything the ones below it can."""

    VIEWER = "viewer"  # reads every page, changes nothing (their own password aside)
    EDITOR = "editor"  # also changes rules, templates, segments, contacts, messages and tasks
    ADMIN = "admin"  # also manages users and API keys

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        """Whether this role may do what *needed* is required for."""
        return self.rank >= needed.rank


_RANKS = {Role.VIEWER: 0, Role.EDITOR: 1, Role.ADMIN: 2}


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    #: the first characters of the key, shown in listings and used to find the row
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    #: SHA-256 of the whole key; the key itself is shown once and never stored
    key_hash: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: after this instant the key is refused (None: never expires)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class User(Base):
    __tablename__ = "users"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: a :class:`Role` value; a row made without one may only read (migration 0012 made earlier users admins)
    role: Mapped[str] = mapped_column(String(16), default=Role.VIEWER.value, server_default=Role.VIEWER.value)
    #: when an admin disabled the account (it cannot sign in, its sessions were ended); None while active
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AdminSession(Base):
    """A signed-in admin browser: the cookie holds the token, this row says it is still valid.

    Signing out deletes the row, a password change deletes every row of the user: a copied
    cookie opens nothing once its row is gone.
    """

    __tablename__ = "admin_sessions"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: SHA-256 of the random token in the session cookie; the token itself is not stored
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
