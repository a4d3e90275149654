"""Admin sign-in: attempts throttled per account and per client address, sessions kept server-side.

Throttling counts attempts in Redis (transport: losing the counters only resets them). Each
account and each client address gets some attempts free; after that every further attempt must
wait twice as long as the one before (1 s, 2 s, 4 s … up to 15 minutes), until an hour passes
without one. The check and the count are one atomic step, so parallel guesses wait too. A
successful sign-in clears its account's count. When Redis cannot be reached, each web process
counts on its own, in memory, each attempt as many as there are web processes (``NUDGE_WEB_PROCESSES``): the
limits of all of them together stay about those of one, and signing in keeps working.

A signed-in browser holds a random token in its session cookie; the ``admin_sessions`` row with
its hash must exist on every admin request. Signing out deletes the row; a new password
(``nudge admin password``) deletes all rows of that user; a session unused for
:data:`IDLE_TIMEOUT` ends. A cookie copied before any of these opens nothing afterwards.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import cast
from urllib.parse import urlsplit

import redis
from flask import Flask, current_app, request, session, url_for
from sqlalchemy import delete, select

from ..clock import now as clock_now
from ..db import affected_rows, get_session
from ..models import AdminSession, User

log = logging.getLogger(__name__)

#: every path below this is an admin page: its view must declare a role (:mod:`server.web.access`)
ADMIN_PREFIX = "/admin"
ACCOUNT_FREE = 5  # attempts per account before waiting starts
ADDRESS_FREE = 20  # attempts per client address before waiting starts
FORGET_AFTER = 3600  # seconds without an attempt after which the count starts again
MAX_WAIT = 900  # the longest wait between two attempts (seconds)
IDLE_TIMEOUT = timedelta(hours=12)
_TOUCH_EVERY = timedelta(minutes=5)  # how often a session's last_seen_at is written

# One atomic check-and-count over both keys: refuse (returning the wait) while either must wait,
# else count the attempt on both.
_ATTEMPT = """
local now = tonumber(ARGV[1])
local wait = 0
local counts = {}
for i, key in ipairs(KEYS) do
  local count = tonumber(redis.call('HGET', key, 'count') or '0')
  local last = tonumber(redis.call('HGET', key, 'last') or '0')
  if now - last > tonumber(ARGV[2]) then count = 0 end
  local free = tonumber(ARGV[2 + i])
  if count >= free then
    local until_ = last + math.min(2 ^ (count - free), tonumber(ARGV[3 + #KEYS]))
    if until_ - now > wait then wait = until_ - now end
  end
  counts[i] = count
end
if wait > 0 then return tostring(wait) end
for i, key in ipairs(KEYS) do
  redis.call('HSET', key, 'count', counts[i] + 1, 'last', ARGV[1])
  redis.call('EXPIRE', key, tonumber(ARGV[2]) + tonumber(ARGV[3 + #KEYS]))
end
return '0'
"""


def _wait(count: int, last: float, now: float, free: int) -> float:
    if now - last > FORGET_AFTER:
        return 0.0
    if count < free:
        return 0.0
    return max(0.0, last + min(2.0 ** (count - free), MAX_WAIT) - now)


def _app_seconds() -> float:
    """Seconds since the epoch by the current app's clock (the real time outside an app context)."""
    return clock_now().timestamp()


class SignInGuard:
    """Flask extension (``app.extensions["nudge.signin"]``): throttling and the clock sessions use.

    :param clock: seconds since the epoch; by default the app's own clock (:mod:`server.clock`), so a test that
        moves the engine's clock on moves sessions and throttling with it.
    """

    def __init__(self, app: Flask | None = None, clock: Callable[[], float] | None = None):
        self.clock = clock or _app_seconds
        #: web processes counting apart when Redis is away (set by ``nudge web``): each attempt counts this many
        self.processes = 1
        self._memory: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.extensions["nudge.signin"] = self

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    @staticmethod
    def _keys(email: str, address: str) -> list[tuple[str, int]]:
        prefix = f"nudge:{current_app.config['QUEUE_NAME']}:signin"  # hashed: no addresses in Redis
        return [
            (f"{prefix}:account:{_digest(email)[:32]}", ACCOUNT_FREE),
            (f"{prefix}:address:{_digest(address)[:32]}", ADDRESS_FREE),
        ]

    def attempt(self, email: str, address: str) -> float:
        """Count one sign-in attempt for *email* from *address*; return 0, or the seconds to wait first."""
        keys = self._keys(email, address)
        now = self.clock()
        try:
            from ..queue import get_queue

            conn = get_queue().redis
            # redis-py types each command for its async client too; this synchronous client returns the reply
            reply = cast(
                "bytes | str",
                conn.eval(
                    _ATTEMPT,
                    len(keys),
                    *(k for k, _ in keys),
                    repr(now),
                    FORGET_AFTER,
                    *(free for _, free in keys),
                    MAX_WAIT,
                ),
            )
            return float(reply)
        except redis.RedisError as exc:
            log.warning("sign-in limits counted in this process only: Redis unreachable (%s)", type(exc).__name__)
        with self._lock:
            wait = max(_wait(*self._memory.get(key, (0, 0.0)), now, free) for key, free in keys)
            if wait > 0:
                return wait
            for key, _free in keys:
                count, last = self._memory.get(key, (0, 0.0))
                self._memory[key] = (self.processes + (0 if now - last > FORGET_AFTER else count), now)
            return 0.0

    def succeeded(self, email: str, address: str) -> None:
        """A correct password: forget the account's attempts, and do not hold this one against the address."""
        (account, _), (by_address, _) = self._keys(email, address)
        try:
            from ..queue import get_queue

            conn = get_queue().redis
            pipe = conn.pipeline()
            pipe.delete(account)
            pipe.hincrby(by_address, "count", -1)
            pipe.expire(by_address, FORGET_AFTER + MAX_WAIT)
            pipe.execute()
        except redis.RedisError:
            pass
        with self._lock:
            self._memory.pop(account, None)
            count, last = self._memory.get(by_address, (1, 0.0))
            self._memory[by_address] = (max(0, count - 1), last)


def guard() -> SignInGuard:
    return current_app.extensions["nudge.signin"]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(user: User) -> None:
    """Sign *user* in on this browser: a new server-side record, its token in a fresh cookie session."""
    token = secrets.token_urlsafe(32)
    now = guard().now()
    db = get_session()
    db.add(AdminSession(user_id=user.id, token_hash=_digest(token), created_at=now, last_seen_at=now))
    user.last_login_at = now
    db.commit()
    session.clear()  # a new session id: nothing from before sign-in carries over
    session["user_id"] = user.id
    session["sid"] = token


def signed_in_user() -> int | None:
    """The signed-in user's id, when the cookie's session record still exists and is in use; else None."""
    token, user_id = session.get("sid"), session.get("user_id")
    if not isinstance(token, str) or not isinstance(user_id, int):
        return None
    db = get_session()
    row = db.scalar(select(AdminSession).where(AdminSession.token_hash == _digest(token)))
    now = guard().now()
    if row is None or row.user_id != user_id:
        session.clear()
        return None
    if now - row.last_seen_at > IDLE_TIMEOUT:
        db.delete(row)
        db.commit()
        session.clear()
        return None
    if now - row.last_seen_at > _TOUCH_EVERY:
        row.last_seen_at = now
        db.commit()
    return row.user_id


def end_session() -> None:
    """Sign this browser out: its record is deleted, so a copy of the cookie is worthless too."""
    token = session.get("sid")
    if isinstance(token, str):
        db = get_session()
        row = db.scalar(select(AdminSession).where(AdminSession.token_hash == _digest(token)))
        if row is not None:
            db.delete(row)
            db.commit()
    session.clear()


def return_path() -> str:
    """Where to come back to after signing in: this page (for htmx, the page the request came from)."""
    if request.headers.get("HX-Request") == "true":
        current = urlsplit(request.headers.get("HX-Current-URL", ""))
        if current.netloc == request.host and current.path.startswith(ADMIN_PREFIX):
            return current.path + (f"?{current.query}" if current.query else "")
        return url_for("admin.dashboard")
    return request.full_path.rstrip("?") if request.query_string else request.path


def live_since() -> datetime:
    """Sessions last used before this instant have ended (idle); those used after it are live."""
    return guard().now() - IDLE_TIMEOUT


def end_other_sessions(user_id: int) -> int:
    """Sign *user_id* out of every browser but this one (after they changed their own password); return how many."""
    token = session.get("sid")
    keep = _digest(token) if isinstance(token, str) else ""
    return affected_rows(
        get_session().execute(
            delete(AdminSession).where(AdminSession.user_id == user_id, AdminSession.token_hash != keep)
        )
    )


__all__ = [
    "ADMIN_PREFIX",
    "SignInGuard",
    "end_other_sessions",
    "end_session",
    "guard",
    "live_since",
    "return_path",
    "signed_in_user",
    "start_session",
]
