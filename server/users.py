"""Managing the people who sign in to the admin UI: create, change role, disable, enable, reset a password.

Every change is audited (actor ``user:<id>``, the target's id, no addresses) and commits nothing by
itself half-way: a refused change raises :class:`UserError` before anything is written. Disabling an
account or resetting its password ends all its sessions at once (their rows are deleted, so the
next request of any of its browsers goes to the sign-in page). There is always an enabled admin:
the last one can be neither demoted nor disabled.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .auth import end_sessions, hash_password
from .contacts import InvalidInput, audit, normalize_email
from .models import AdminSession, Role, User, utcnow
from .passwords import password_problem


class UserError(Exception):
    """A change to a user that may not be made; ``field`` names the form field it is about."""

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.field = field


def parse_role(value: str) -> Role:
    """The :class:`Role` named *value*; :class:`UserError` when it names none."""
    try:
        return Role(value)
    except ValueError:
        raise UserError(f"role {value!r} is not one of {', '.join(r.value for r in Role)}", "role") from None


def one_time_password() -> str:
    """A random password, shown once to the admin who hands it on."""
    return secrets.token_urlsafe(12)


def _checked_password(chosen: str | None, email: str) -> str:
    if chosen is None or chosen == "":
        return one_time_password()
    problem = password_problem(chosen, email)
    if problem:
        raise UserError(f"password refused: {problem}", "password")
    return chosen


def create_user(session: Session, email: str, role: str, actor: str, password: str | None = None) -> tuple[User, str]:
    """Add a user; return it and its password (a one-time one unless *password* is chosen).

    :raises UserError: for an invalid or taken address, an unknown role, a weak chosen password.
    """
    try:
        address = normalize_email(email)
    except InvalidInput as exc:
        raise UserError(str(exc), "email") from None
    level = parse_role(role)
    if session.scalar(select(User.id).where(User.email == address)) is not None:
        raise UserError(f"there is already a user {address}", "email")
    secret = _checked_password(password, address)
    user = User(email=address, password_hash=hash_password(secret), role=level.value, created_at=utcnow())
    session.add(user)
    session.flush()
    audit(
        session, actor, "user.created", "user", user.id, role=level.value, password="chosen" if password else "one-time"
    )
    session.commit()
    return user, secret


def _other_admins(session: Session, user: User) -> int:
    return (
        session.scalar(
            select(func.count(User.id)).where(
                User.role == Role.ADMIN.value, User.disabled_at.is_(None), User.id != user.id
            )
        )
        or 0
    )


def _keep_an_admin(session: Session, user: User, doing: str) -> None:
    if user.role == Role.ADMIN.value and user.disabled_at is None and not _other_admins(session, user):
        raise UserError(
            f"{user.email} is the last admin: {doing} would leave nobody to manage users; "
            "make another user an admin first",
            "role",
        )


def change_role(session: Session, user: User, role: str, actor: str) -> bool:
    """Give *user* *role*; False when they had it already (nothing changes then).

    :raises UserError: for an unknown role, or when *user* is the last enabled admin and *role* is lower.
    """
    level = parse_role(role)
    if user.role == level.value:
        return False
    if level != Role.ADMIN:
        _keep_an_admin(session, user, f"making them {level.value}")
    before, user.role = user.role, level.value
    audit(session, actor, "user.role_changed", "user", user.id, before=before, after=level.value)
    session.commit()
    return True


def disable(session: Session, user: User, actor: str, actor_id: int | None = None) -> int:
    """Disable *user* and end all their sessions now; return how many sessions ended.

    :raises UserError: when it is the acting person themselves, is disabled already, or is the last admin.
    """
    if actor_id is not None and user.id == actor_id:
        raise UserError("you cannot disable your own account; sign out instead, or ask another admin")
    if user.disabled_at is not None:
        raise UserError(f"{user.email} is disabled already")
    _keep_an_admin(session, user, "disabling them")
    user.disabled_at = utcnow()
    ended = end_sessions(session, user.id)
    audit(session, actor, "user.disabled", "user", user.id, sessions_ended=ended)
    session.commit()
    return ended


def enable(session: Session, user: User, actor: str) -> None:
    """Let a disabled *user* sign in again (with their old password).

    :raises UserError: when the account is not disabled.
    """
    if user.disabled_at is None:
        raise UserError(f"{user.email} is not disabled")
    user.disabled_at = None
    audit(session, actor, "user.enabled", "user", user.id)
    session.commit()


def reset_password(
    session: Session, user: User, actor: str, password: str | None = None, actor_id: int | None = None
) -> tuple[str, int]:
    """Give *user* a new password (one-time unless chosen) and end all their sessions; return it and how many ended.

    :raises UserError: for a weak chosen password, or for the acting person's own account (they change
        it on their account page, with their current password).
    """
    if actor_id is not None and user.id == actor_id:
        raise UserError("change your own password on Your account, with your current one", "password")
    secret = _checked_password(password, user.email)
    user.password_hash = hash_password(secret)
    ended = end_sessions(session, user.id)
    audit(
        session,
        actor,
        "user.password_reset",
        "user",
        user.id,
        password="chosen" if password else "one-time",
        sessions_ended=ended,
    )
    session.commit()
    return secret, ended


def active_sessions(session: Session, since: datetime) -> dict[int, int]:
    """Per user id: how many browsers are signed in (sessions last used after *since*)."""
    rows = session.execute(
        select(AdminSession.user_id, func.count())
        .where(AdminSession.last_seen_at > since)
        .group_by(AdminSession.user_id)
    )
    return dict(rows.all())


__all__ = [
    "UserError",
    "active_sessions",
    "change_role",
    "create_user",
    "disable",
    "enable",
    "one_time_password",
    "parse_role",
    "reset_password",
]
