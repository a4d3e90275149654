"""API keys and admin passwords."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import weakref
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from typing import Any, NamedTuple

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import g, request
from sqlalchemy import Engine, bindparam, delete, select
from sqlalchemy.orm import Session

from .contacts.normalize import iso
from .db import affected_rows
from .models import AdminSession, ApiKey, Role, Scope, User, utcnow

KEY_PREFIX = "nk_"
#: how often ``last_used_at`` of a key is written (not on every request: one write per minute at most)
LAST_USED_EVERY = timedelta(minutes=1)
_hasher = PasswordHasher()
_dummy_hash: str | None = None


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(session: Session, scope: Scope | str, name: str = "", expires_at: datetime | None = None) -> str:
    """Store a new key and return it; this is the only time the full key exists in clear.

    :param expires_at: when the key stops working (aware); None for never.
    """
    scope = Scope(scope)
    ident = secrets.token_hex(4)
    key = f"{KEY_PREFIX}{scope.value}_{ident}_{secrets.token_urlsafe(32)}"
    session.add(ApiKey(prefix=ident, key_hash=_digest(key), scope=scope.value, name=name, expires_at=expires_at))
    session.commit()
    return key


class KeyRefused(Exception):
    """An API key that may not be used: ``title`` and ``detail`` say why (answered 401)."""

    def __init__(self, title: str, detail: str):
        super().__init__(detail)
        self.title, self.detail = title, detail


def authenticate_api_key(session: Session, key: str, now: datetime | None = None) -> ApiKey:
    """The stored key for *key*, read from the database on every call (a revocation counts at once).

    :raises KeyRefused: for an unknown, revoked or expired key.
    """
    parts = key.split("_")
    row = None
    if key.startswith(KEY_PREFIX) and len(parts) >= 4:
        row = session.scalar(select(ApiKey).where(ApiKey.prefix == parts[2]))
    if row is None or not hmac.compare_digest(row.key_hash, _digest(key)):
        raise KeyRefused("Invalid API key", "the key is unknown; create one with: nudge apikey create --scope ingest")
    if row.revoked_at is not None:
        raise KeyRefused(
            "API key revoked",
            f"the key {row.prefix} was revoked at {iso(row.revoked_at)}; create a new one with: nudge apikey create",
        )
    if row.expires_at is not None and row.expires_at <= (now or utcnow()):
        raise KeyRefused(
            "API key expired",
            f"the key {row.prefix} expired at {iso(row.expires_at)}; "
            "create a new one with: nudge apikey create --expires 90d",
        )
    return row


def verify_api_key(session: Session, key: str) -> ApiKey | None:
    """The stored key for *key*, or None when it is unknown, revoked or expired."""
    try:
        return authenticate_api_key(session, key)
    except KeyRefused:
        return None


class KeyInfo(NamedTuple):
    """What a request needs of a valid key (``g.api_key``): its id, public prefix and scope."""

    id: int
    prefix: str
    scope: str


_LOOKUP = select(
    ApiKey.id, ApiKey.key_hash, ApiKey.scope, ApiKey.revoked_at, ApiKey.expires_at, ApiKey.last_used_at
).where(ApiKey.prefix == bindparam("prefix"))


class _Lookup(NamedTuple):
    sql: str
    positional: bool
    #: result processors of the three datetime columns (revoked_at, expires_at, last_used_at)
    dates: tuple[Callable[[Any], Any] | None, ...]


_lookups: weakref.WeakKeyDictionary[Any, _Lookup] = weakref.WeakKeyDictionary()  # per dialect (one per engine)


def _lookup_for(engine: Engine) -> _Lookup:
    """The key look-up compiled once per dialect: its SQL for the driver, and how to read its datetimes."""
    dialect = engine.dialect
    found = _lookups.get(dialect)
    if found is None:
        compiled = _LOOKUP.compile(dialect=dialect)
        columns = ApiKey.__table__.c
        dates = tuple(
            columns[name].type.dialect_impl(dialect).result_processor(dialect, None)
            for name in ("revoked_at", "expires_at", "last_used_at")
        )
        found = _lookups[dialect] = _Lookup(str(compiled), bool(compiled.positional), dates)
    return found


def quick_key(engine: Engine, key: str, now: datetime | None = None) -> KeyInfo | None:
    """The key for *key* when it is valid and was used within :data:`LAST_USED_EVERY`, from one indexed SELECT on
    a pooled driver connection (no ORM, no transaction kept); None for anything else (unknown, revoked, expired,
    ``last_used_at`` to move), which :func:`authenticate_api_key` then decides and explains.

    Read from the database on every call, as :func:`authenticate_api_key`: a revocation counts from the next request.
    """
    if not _key_parts(key):
        return None
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        found = key_on(cursor, engine, key, now)
        cursor.close()
        return found
    finally:
        raw.close()  # back to the pool (a transaction the driver began is rolled back there)


def _key_parts(key: str) -> list[str] | None:
    parts = key.split("_")
    return parts if key.startswith(KEY_PREFIX) and len(parts) >= 4 else None


def key_on(cursor: Any, engine: Engine, key: str, now: datetime | None = None) -> KeyInfo | None:
    """:func:`quick_key` through the DBAPI *cursor* of a connection to *engine* (in the caller's transaction)."""
    parts = _key_parts(key)
    if parts is None:
        return None
    lookup = _lookup_for(engine)
    cursor.execute(lookup.sql, (parts[2],) if lookup.positional else {"prefix": parts[2]})
    row = cursor.fetchone()
    if row is None or not hmac.compare_digest(row[1], _digest(key)):
        return None
    revoked_at, expires_at, last_used_at = (
        convert(value) if convert else value for convert, value in zip(lookup.dates, row[3:], strict=True)
    )
    now = now or utcnow()
    if revoked_at is not None or (expires_at is not None and expires_at <= now):
        return None
    if last_used_at is None or now - last_used_at >= LAST_USED_EVERY:
        return None
    return KeyInfo(row[0], parts[2], row[2])


def _note_use(session: Session, key: ApiKey) -> None:
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_EVERY:
        key.last_used_at = now
        session.commit()


def check_key(token: str, *scopes: Scope) -> KeyInfo | ApiKey | Any:
    """The valid key *token* of one of *scopes* (admin always passes), or the problem+json answer refusing it.

    The quick look-up first (:func:`quick_key`); the full one when the key is not plainly valid or its last use is
    to be written, which then says why it is refused (401) and notes the use. A wrong scope is a 403.
    """
    from flask import Response

    from .db import get_session, read_only
    from .problems import problem

    allowed = {s.value for s in scopes} | {Scope.ADMIN.value}
    session = get_session()
    bind = session.get_bind()
    key: KeyInfo | ApiKey | None = quick_key(bind, token) if isinstance(bind, Engine) else None
    stored: ApiKey | None = None
    if key is None:  # not plainly valid, or its last use is to be written: the full look-up says which
        read_only(session)  # the look-up waits for no writer; it ends before the view writes
        try:
            key = stored = authenticate_api_key(session, token)
        except KeyRefused as refused:
            session.rollback()
            return problem(401, refused.title, refused.detail)
        session.commit()
    if key.scope not in allowed:
        answer: Response = problem(
            403,
            "Insufficient scope",
            f"this endpoint needs a key with scope {' or '.join(sorted(allowed))}, not {key.scope}",
        )
        return answer
    if stored is not None:
        _note_use(session, stored)
    return key


def require_api_key(*scopes: Scope) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator for API views: a valid ``Authorization: Bearer`` key of one of *scopes* (admin always passes)."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from .problems import problem

            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return problem(
                    401,
                    "Missing API key",
                    "send the header 'Authorization: Bearer <key>'; "
                    "create a key with: nudge apikey create --scope ingest",
                )
            key = check_key(token.strip(), *scopes)
            if not isinstance(key, (KeyInfo, ApiKey)):
                return key
            g.api_key = key
            return view(*args, **kwargs)

        return wrapper

    return decorator


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _dummy() -> str:
    """A hash of a random password, made with the same parameters as real ones (once per process)."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash(secrets.token_urlsafe(16))
    return _dummy_hash


def check_password(user: User | None, password: str) -> bool:
    """Whether *password* is *user*'s.

    For an unknown user (None) a dummy hash is verified all the same, so an answer takes as long
    for an unknown address as for a known one and does not tell which addresses have accounts.
    """
    try:
        matched = _hasher.verify(user.password_hash if user is not None else _dummy(), password)
    except (VerificationError, InvalidHashError):
        return False
    return matched and user is not None


def set_password(session: Session, user: User, password: str) -> None:
    """Give *user* a new password and end every session they have (the caller commits)."""
    user.password_hash = hash_password(password)
    if user.id is not None:
        end_sessions(session, user.id)


def end_sessions(session: Session, user_id: int) -> int:
    """Sign *user_id* out everywhere: delete their server-side session records; return how many."""
    return affected_rows(session.execute(delete(AdminSession).where(AdminSession.user_id == user_id)))


def ensure_first_admin(session: Session, email: str = "admin@localhost") -> tuple[str, str] | None:
    """Create the first admin user when there is none; return (email, password) if one was made."""
    if session.scalar(select(User.id).limit(1)) is not None:
        return None
    password = secrets.token_urlsafe(12)
    session.add(User(email=email, password_hash=hash_password(password), created_at=utcnow(), role=Role.ADMIN.value))
    session.commit()
    return email, password
