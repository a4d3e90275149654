"""API keys and admin passwords."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from functools import wraps
from typing import Any, Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import g, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import ApiKey, Scope, User, utcnow

KEY_PREFIX = "nk_"
_hasher = PasswordHasher()


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(session: Session, scope: Scope | str, name: str = "") -> str:
    """Store a new key and return it; this is the only time the full key exists in clear."""
    scope = Scope(scope)
    ident = secrets.token_hex(4)
    key = f"{KEY_PREFIX}{scope.value}_{ident}_{secrets.token_urlsafe(32)}"
    session.add(ApiKey(prefix=ident, key_hash=_digest(key), scope=scope.value, name=name))
    session.commit()
    return key


def verify_api_key(session: Session, key: str) -> ApiKey | None:
    parts = key.split("_")
    if not key.startswith(KEY_PREFIX) or len(parts) < 4:
        return None
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == parts[2]))
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.key_hash, _digest(key)):
        return None
    return row


def require_api_key(*scopes: Scope) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator for API views: a valid ``Authorization: Bearer`` key of one of *scopes* (admin always passes)."""
    allowed = {s.value for s in scopes} | {Scope.ADMIN.value}

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from .api.problems import problem
            from .db import get_session

            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return problem(401, "Missing API key", "send the header 'Authorization: Bearer <key>'; "
                               "create a key with: nudge apikey create --scope ingest")
            key = verify_api_key(get_session(), token.strip())
            if key is None:
                return problem(401, "Invalid API key", "the key is unknown or revoked")
            if key.scope not in allowed:
                return problem(403, "Insufficient scope",
                               f"this endpoint needs a key with scope {' or '.join(sorted(allowed))}, not {key.scope}")
            g.api_key = key
            return view(*args, **kwargs)

        return wrapper

    return decorator


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(user: User, password: str) -> bool:
    try:
        return _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def ensure_first_admin(session: Session, email: str = "admin@localhost") -> tuple[str, str] | None:
    """Create the first admin user when there is none; return (email, password) if one was made."""
    if session.scalar(select(User.id).limit(1)) is not None:
        return None
    password = secrets.token_urlsafe(12)
    session.add(User(email=email, password_hash=hash_password(password), created_at=utcnow()))
    session.commit()
    return email, password
