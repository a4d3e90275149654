"""Keeping a channel's sends within its provider's rate limit (:meth:`server.sdk.Channel.rate_limit`).

A generic cell rate algorithm (GCRA, a token bucket kept as one timestamp): each key's *theoretical arrival time*
lives in Redis, moved by a Lua script, so every worker and process shares one limit per key. Time is the engine's
(the caller passes it in), so a frozen clock sends exactly ``burst`` messages and advancing it releases the next.
Nothing waits here: :meth:`Pacer.take` answers how many may go now and when the next slot comes; the outbox puts
the others back until then. If Redis cannot be reached, each process keeps its own limit (said once in the log):
a limit per process, not per key across processes, until Redis answers again.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import redis
from flask import Flask

from ..sdk import RateLimit

__all__ = ["Pacer", "Taken", "pacer_for"]

log = logging.getLogger(__name__)

#: seconds between tries of Redis after it failed (meanwhile the process-local limit applies)
RETRY_REDIS = 30.0

#: KEYS[1]: the key; ARGV: now, emission interval (1/rate), tolerance ((burst-1)·interval), messages wanted.
#: Returns how many may go now and the first slot of the next one, as strings (Redis truncates Lua numbers).
_GCRA = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local wanted = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
if tat < now then tat = now end
local allowed = 0
while allowed < wanted and tat - now <= tolerance + 1e-9 do
  tat = tat + interval
  allowed = allowed + 1
end
if allowed > 0 then
  redis.call('SET', KEYS[1], string.format('%.6f', tat), 'PX', math.ceil((tat - now) * 1000) + 60000)
end
return {tostring(allowed), string.format('%.6f', tat - tolerance)}
"""


@dataclass(frozen=True)
class Taken:
    """How many of the messages asked for may go now; the others' slots are ``next_slot + k / per_second``."""

    allowed: int
    next_slot: float


def gcra(tat: float | None, now: float, limit: RateLimit, wanted: int) -> tuple[int, float, float]:
    """The script's arithmetic in Python: (allowed, new theoretical arrival time, next slot)."""
    interval = 1.0 / limit.per_second
    tolerance = (limit.burst - 1) * interval
    tat = max(now if tat is None else tat, now)
    allowed = 0
    while allowed < wanted and tat - now <= tolerance + 1e-9:
        tat += interval
        allowed += 1
    return allowed, tat, tat - tolerance


class Pacer:
    """Rate limits by key, shared through Redis (*client*), or kept in this process when Redis is unavailable."""

    def __init__(self, client: redis.Redis | None, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self._script = client.register_script(_GCRA) if client is not None else None
        self._local: dict[str, float] = {}
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._warned = False

    def take(self, channel: str, limit: RateLimit, wanted: int, now: float) -> Taken:
        """Take up to *wanted* sends of *channel*'s *limit* at the engine time *now*."""
        key = f"{self.namespace}:pace:{channel}:{limit.key}"
        if self._script is not None and time.monotonic() >= self._down_until:
            interval = 1.0 / limit.per_second
            args: list[str | int] = [repr(float(now)), repr(interval), repr((limit.burst - 1) * interval), wanted]
            try:
                allowed, slot = self._script(keys=[key], args=args)
            except redis.RedisError as exc:
                self._down_until = time.monotonic() + RETRY_REDIS
                if not self._warned:
                    log.warning(
                        "rate limits cannot be shared through Redis (%s): each process keeps its own until it "
                        "answers again, so several workers together may exceed a provider's rate",
                        exc,
                    )
                    self._warned = True
            else:
                if self._warned:
                    log.warning("Redis answers again: rate limits are shared across processes once more")
                    self._warned = False
                return Taken(int(allowed), float(slot))
        with self._lock:
            allowed, tat, slot = gcra(self._local.get(key), now, limit, wanted)
            if allowed:
                self._local[key] = tat
        return Taken(allowed, slot)


def pacer_for(app: Flask) -> Pacer:
    """The app's pacer (one per process, so the fallback limit holds across the jobs of a worker)."""
    pacer = app.extensions.get("nudge.pacer")
    if pacer is None:
        queue = app.extensions.get("nudge.queue")
        client = None
        try:
            client = queue.redis if queue is not None else None
        except Exception as exc:  # an embedded Redis that will not start: the limit is kept per process
            log.warning("rate limits are kept per process: Redis is unavailable (%s)", exc)
        pacer = app.extensions.setdefault("nudge.pacer", Pacer(client, str(app.config.get("QUEUE_NAME", "nudge"))))
    return pacer
