"""Send-time optimisation: ``send CHANNEL NAME at best time within D`` waits for the hour this contact engages most.

The contact's **hour profile** is 24 weights, one per local hour (their time zone, else the instance's), read in
one query from their human opens and clicks (any channel's ``<channel>.opened`` / ``<channel>.clicked``) of the
last :data:`LOOKBACK` seconds. Machine events (an image proxy, a link scanner) do not count. An open or click
within :data:`SEND_ECHO` seconds after a message was sent to the contact weighs :data:`ECHO_WEIGHT` only: many
opens land in that first hour whatever the hour, so they say more about when we sent than when they read.

The **population profile** is the same weighting over the instance's latest :data:`POPULATION_SAMPLE`
engagement events (each in its own contact's zone), as shares summing to 1; read at most once an hour (engine
clock) per database and process.

The two are blended by shrinkage: ``posterior[h] = contact[h] + k × population_share[h]`` with ``k`` =
``BEST_TIME_PRIOR`` (default 5): a contact with no history gets the population's best hour, one with a few opens
leans towards their own, and one with many follows their own. The chosen moment is the start of the local hour
with the highest posterior among the hours from now to the end of the window that are outside quiet hours
(now itself counts, so a send already in its best hour goes at once); ties go to the earliest. With no
engagement anywhere, every hour ties and the send goes now.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import or_, select

from ..models import Contact, Enrolment, Event, JourneyLog, Message, MessageStatus
from . import policy
from .context import EngineContext
from .effects import channel_class, park
from .timeutil import to_dt, to_ts, zone

__all__ = [
    "ECHO_WEIGHT",
    "LOOKBACK",
    "POPULATION_SAMPLE",
    "SEND_ECHO",
    "BestTime",
    "choose",
    "contact_profile",
    "population_profile",
    "resumed_for_best_time",
    "wait_for_best_time",
]

#: how far back a contact's engagement counts
LOOKBACK = 180 * 86400
#: engagement this soon after a send is mostly the send's echo ...
SEND_ECHO = 3600
#: ... and weighs this much instead of 1
ECHO_WEIGHT = 0.25
#: the population profile reads at most this many of the latest engagement events
POPULATION_SAMPLE = 20_000
#: the journey trace's reason for a best-time wait starts with this
WHY = "best time"

Profile = list[float]


def _engagement() -> Any:
    return or_(Event.name.like("%.opened"), Event.name.like("%.clicked"))


def _weighted(
    rows: Iterable[tuple[int, datetime, Any, str | None]], sends: Mapping[int, list[int]], tz: str
) -> Profile:
    """24 weights by local hour from (contact id, time, props, zone name) rows; *sends*: each contact's send times."""
    hours = [0.0] * 24
    for contact_id, occurred, props, zone_name in rows:
        if isinstance(props, Mapping) and props.get("machine"):
            continue
        ts = to_ts(occurred)
        times = sends.get(contact_id, [])
        before = times[bisect_right(times, ts) - 1] if times and times[0] <= ts else None
        weight = ECHO_WEIGHT if before is not None and ts - before < SEND_ECHO else 1.0
        hours[to_dt(ts).astimezone(zone(zone_name, tz)).hour] += weight
    return hours


def _sends(session: Any, contact_ids: Iterable[int], since: int) -> dict[int, list[int]]:
    ids = sorted(set(contact_ids))
    out: dict[int, list[int]] = {}
    for start in range(0, len(ids), 1000):
        rows = session.execute(
            select(Message.contact_id, Message.sent_at).where(
                Message.contact_id.in_(ids[start : start + 1000]),
                Message.status == MessageStatus.SENT.value,
                Message.sent_at >= to_dt(since - SEND_ECHO),
            )
        )
        for contact_id, sent_at in rows:
            out.setdefault(contact_id, []).append(to_ts(sent_at))
    return {key: sorted(times) for key, times in out.items()}


def contact_profile(session: Any, contact: Contact, now: int, default_tz: str) -> Profile:
    """The contact's engagement weights by their local hour (see the module's notes)."""
    since = now - LOOKBACK
    rows = [
        (contact.id, occurred, props, contact.timezone)
        for occurred, props in session.execute(
            select(Event.occurred_at, Event.props).where(
                Event.contact_id == contact.id, _engagement(), Event.occurred_at >= to_dt(since)
            )
        )
    ]
    return _weighted(rows, _sends(session, [contact.id], since) if rows else {}, default_tz)


def population_profile(session: Any, now: int, default_tz: str) -> Profile:
    """The instance's engagement shares by local hour (each event in its contact's zone); all zero without any."""
    rows = list(
        session.execute(
            select(Event.contact_id, Event.occurred_at, Event.props, Contact.timezone)
            .join(Contact, Contact.id == Event.contact_id)
            .where(_engagement(), Event.occurred_at >= to_dt(now - LOOKBACK), Event.occurred_at <= to_dt(now))
            .order_by(Event.id.desc())
            .limit(POPULATION_SAMPLE)
        )
    )
    if not rows:
        return [0.0] * 24
    since = min(to_ts(row[1]) for row in rows)
    hours = _weighted(rows, _sends(session, (row[0] for row in rows), since), default_tz)
    total = sum(hours)
    return [h / total for h in hours] if total else hours


@dataclass(frozen=True)
class BestTime:
    """The moment chosen for a best-time send, and the evidence: what ``--trace`` and ``nudge explain`` say."""

    at: int
    hour: int
    history: float
    population_hour: int | None
    prior: float
    score: float

    def why(self) -> str:
        """``best time 14:00 (contact history n=6.5, population best 10:00, blend own + 5 × population share)``."""
        population = f"{self.population_hour:02d}:00" if self.population_hour is not None else "none yet"
        return (
            f"{WHY} {self.hour:02d}:00 (contact history n={self.history:g}, population best {population}, "
            f"blend own + {self.prior:g} × population share)"
        )


def choose(
    now: int,
    within: int,
    own: Profile,
    population: Profile,
    prior: float,
    tz_name: str,
    allowed: Any,
) -> BestTime:
    """The start of the best local hour from *now* to ``now + within``.

    :param own: the contact's weights by local hour; *population*: the instance's shares.
    :param prior: ``k``, how many engagements' worth the population pattern weighs.
    :param tz_name: the contact's zone.
    :param allowed: ``(ts) -> bool``: whether a send may go at *ts* (quiet hours).
    """
    tz = zone(tz_name)
    posterior = [own[h] + prior * population[h] for h in range(24)]
    local = to_dt(now).astimezone(tz)
    first = now + (3600 - (local.minute * 60 + local.second)) % 3600
    candidates = [now] + [t for t in range(first, now + within + 1, 3600) if t != now]
    best_at, best_score = now, -1.0
    for moment in candidates:
        if not allowed(moment):
            continue
        score = posterior[to_dt(moment).astimezone(tz).hour]
        if score > best_score:
            best_at, best_score = moment, score
    population_hour = max(range(24), key=lambda h: population[h]) if any(population) else None
    hour = to_dt(best_at).astimezone(tz).hour
    return BestTime(best_at, hour, sum(own), population_hour, prior, max(best_score, 0.0))


def resumed_for_best_time(session: Any, enrolment: Enrolment) -> bool:
    """Whether the enrolment's last wait was the best-time wait of the step at its pc: its hour has come."""
    data = session.scalar(
        select(JourneyLog.data)
        .where(  # found through its contact (the trace's index), the journey a filter
            JourneyLog.contact_id == enrolment.contact_id,
            JourneyLog.enrolment_id == enrolment.id,
            JourneyLog.action == "wait",
        )
        .order_by(JourneyLog.id.desc())
        .limit(1)
    )
    return isinstance(data, Mapping) and data.get("pc") == enrolment.pc and str(data.get("why", "")).startswith(WHY)


#: each database's population profile, with the engine-clock hour and default zone it was read for
_POPULATION: WeakKeyDictionary[Any, tuple[int, str, Profile]] = WeakKeyDictionary()


def _population(ctx: EngineContext) -> Profile:
    """The population profile, read at most once an hour (engine clock) per database and process: the query
    reads up to :data:`POPULATION_SAMPLE` events (about 0.5 s on SQLite), and the pattern moves slowly."""
    bind = ctx.session.get_bind()
    engine = getattr(bind, "engine", bind)
    cached = _POPULATION.get(engine)
    if cached is not None and cached[:2] == (ctx.now // 3600, ctx.default_tz):
        return cached[2]
    profile = population_profile(ctx.session, ctx.now, ctx.default_tz)
    _POPULATION[engine] = (ctx.now // 3600, ctx.default_tz, profile)
    return profile


def wait_for_best_time(ctx: EngineContext, enr: Enrolment, contact: Contact, op: Mapping[str, Any], plan: Any) -> bool:
    """Park *enr* until the contact's best hour for the send *op*; True if it now waits, False to send now.

    Every decision is traced (``best_time``: the hour, the history, the population's best hour, the blend); a
    journey woken by its own best-time wait sends at once, whatever the profile says by then.
    """
    if resumed_for_best_time(ctx.session, enr):
        return False
    tz = contact.timezone or ctx.default_tz
    population = _population(ctx)
    cls = channel_class(ctx, str(op["channel"]))
    quiet = plan.get("quiet_hours")
    chosen = choose(
        ctx.now,
        int(op["best_within"]),
        contact_profile(ctx.session, contact, ctx.now, ctx.default_tz),
        population,
        float(ctx.config.get("BEST_TIME_PRIOR", 5.0)),
        tz,
        lambda ts: policy.resumes_at(ts, quiet, cls, contact, ctx.config) is None,
    )
    ctx.log(contact.id, enr.rule_id, "best_time", enr.id, step=op.get("id"), until=chosen.at, why=chosen.why())
    if chosen.at <= ctx.now:
        return False
    park(ctx, enr, chosen.at, chosen.why())
    return True
