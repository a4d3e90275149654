"""Revenue attribution: an event carrying a value is credited to the message that touched its contact last.

When the event arrives (the engine claims it, set-wise or one by one) its value (the property
``NUDGE_REVENUE_PROPERTY``, ``revenue`` by default) is attributed to the journey's or broadcast's message the
contact clicked last within ``NUDGE_ATTRIBUTION_CLICK_WINDOW`` (a person's click: machine clicks never count),
else to the one delivered last within ``NUDGE_ATTRIBUTION_DELIVERY_WINDOW``. The result is stored in
``attributions`` with the event, so later setting changes never rewrite history; :func:`recompute` redoes it on
demand. The rollup folds the rows into ``conversions`` and ``revenue`` counters per rule, step and arm (a
broadcast's under rule 0 and its own step; docs/stats.md, "Revenue").
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from ..config import window_seconds
from ..models import Attribution, Enrolment, Event, Message, MessageStatusChange, utcnow
from .keys import BROADCAST_RULE, MEASURED, broadcast_of, broadcast_step, enrolment_of
from .machine_events import is_machine

log = logging.getLogger(__name__)

#: amounts are kept in ten-thousandths of the currency unit: exact for every currency's minor unit
SCALE = 10_000
#: the largest value attributed (in the currency unit); larger ones are ignored as mistakes
MAX_VALUE = Decimal(10) ** 12
#: a touch by delivery: the provider's receipt, or (channels without receipts, such as SMTP) its acceptance
DELIVERED = ("delivered", "sent")

__all__ = ["DELIVERED", "MAX_VALUE", "SCALE", "amount_of", "attribute", "attribute_rows", "recompute"]


def amount_of(value: Any) -> tuple[int | None, str]:
    """A conversion's value in ten-thousandths of the unit, or None and the reason it is not one.

    Numbers and numeric strings (``49.90``, ``"49.90"``) count, 0 included; booleans, text, NaN, infinities,
    negative values and values above :data:`MAX_VALUE` do not. Digits past the fourth decimal are rounded half-even.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None, f"is a {type(value).__name__}, not a number"
    if isinstance(value, float) and not math.isfinite(value):
        return None, "is not a finite number"
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None, "is not a number"
    if not number.is_finite():
        return None, "is not a finite number"
    if number < 0:
        return None, "is negative (a refund is not a conversion)"
    if number > MAX_VALUE:
        return None, f"is above {MAX_VALUE:,} (a mistake, surely)"
    return int((number * SCALE).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)), ""


class _Windows:
    """The settings attribution reads, checked once per batch."""

    def __init__(self, config: Any) -> None:
        self.prop = str(config.get("REVENUE_PROPERTY") or "revenue")
        self.click = timedelta(seconds=window_seconds(str(config.get("ATTRIBUTION_CLICK_WINDOW", "7d"))))
        self.delivery = timedelta(seconds=window_seconds(str(config.get("ATTRIBUTION_DELIVERY_WINDOW", "1d"))))


def attribute(session: Session, config: Any, event_ids: Sequence[int]) -> int:
    """Attribute the events among *event_ids* that carry a value and are not attributed yet (in the session's
    transaction: they are written with the claim of the events).

    :return: how many were attributed.
    """
    ids = sorted(set(event_ids))
    return attribute_rows(session, config, _read(session, ids, Event.id, Event.props))


def attribute_rows(session: Session, config: Any, events: Sequence[Any]) -> int:
    """:func:`attribute` for events already read (rows with ``id`` and ``props``): only the few that carry a value
    are read again, whole.

    :return: how many were attributed.
    """
    windows = _Windows(config)
    ids = [row.id for row in events if isinstance(row.props, dict) and windows.prop in row.props]
    if not ids:
        return 0
    rows = _read(session, ids, Event.id, Event.contact_id, Event.props, Event.occurred_at)
    done = set(session.scalars(select(Attribution.event_id).where(Attribution.event_id.in_(ids))))
    return sum(_attribute_one(session, windows, row) for row in rows if row.id not in done)


def _read(session: Session, ids: list[int], *columns: Any) -> list[Any]:
    """*columns* of the events *ids*, 900 ids a statement (SQLite's limit on bound values)."""
    rows: list[Any] = []
    for start in range(0, len(ids), 900):
        rows += session.execute(select(*columns).where(Event.id.in_(ids[start : start + 900]))).all()
    return rows


def _attribute_one(session: Session, windows: _Windows, row: Any) -> bool:
    amount, reason = amount_of(row.props[windows.prop])
    if amount is None:
        log.info("event %s: its %s %s; it is not attributed", row.id, windows.prop, reason)
        return False
    touch = _last_touch(session, windows, row.contact_id, row.occurred_at, row.id)
    if touch is None:
        return False
    kind, at, message_id, key, template = touch
    ident = broadcast_of(key)
    if ident is not None:  # a broadcast's message: filed under rule 0 and its own step
        rule_id, version_id, step = BROADCAST_RULE, BROADCAST_RULE, broadcast_step(ident)
    else:
        journey = session.execute(
            select(Enrolment.rule_id, Enrolment.version_id).where(Enrolment.id == enrolment_of(key))
        ).first()
        if journey is None:
            return False  # its journey was erased: nothing to credit
        rule_id, version_id, step = journey.rule_id, journey.version_id, key.split(":", 2)[2][:64]
    session.add(
        Attribution(
            event_id=row.id,
            message_id=message_id,
            message_key=key,
            rule_id=rule_id,
            version_id=version_id,
            step=step,
            template=template[:255],
            touch=kind,
            touched_at=at,
            amount=amount,
            occurred_at=row.occurred_at,
            attributed_at=utcnow(),
        )
    )
    session.flush()
    return True


def _last_touch(
    session: Session, windows: _Windows, contact_id: int, at: datetime, event_id: int
) -> tuple[str, datetime, int, str, str] | None:
    """The journey's or broadcast's message a person clicked last within the click window, else the one delivered
    last within the delivery window: (touch, when, message id, key, template)."""
    if windows.click:
        clicks = session.execute(
            select(Event.props, Event.occurred_at)
            .where(
                Event.contact_id == contact_id,
                Event.name.like("%.clicked"),
                Event.occurred_at >= at - windows.click,
                Event.occurred_at <= at,
                Event.id != event_id,
            )
            .order_by(Event.occurred_at.desc(), Event.id.desc())
        )
        for props, when in clicks:
            key = (props or {}).get("message") if isinstance(props, dict) else None
            if is_machine(props) or not isinstance(key, str) or not key.startswith(MEASURED):
                continue  # a scanner's click, or a message of no journey or broadcast
            message = session.execute(select(Message.id, Message.template).where(Message.key == key)).first()
            if message is not None:
                return "click", when, message.id, key, message.template
    if windows.delivery:
        found = session.execute(
            select(Message.id, Message.key, Message.template, MessageStatusChange.at)
            .join(MessageStatusChange, MessageStatusChange.message_id == Message.id)
            .where(
                Message.contact_id == contact_id,
                or_(*(Message.key.like(prefix + "%") for prefix in MEASURED)),
                MessageStatusChange.status.in_(DELIVERED),
                MessageStatusChange.at >= at - windows.delivery,
                MessageStatusChange.at <= at,
            )
            .order_by(MessageStatusChange.at.desc(), MessageStatusChange.id.desc())
            .limit(1)
        ).first()
        if found is not None:
            return "delivery", found.at, found.id, found.key, found.template
    return None


def recompute(session: Session, config: Any, progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Attribute every stored event again with today's settings and rebuild the revenue counters, all or nothing.

    :param progress: called with the number of events looked at after each chunk (for a progress bar).
    :return: ``events`` looked at, ``attributed``.
    """
    from .rollup import rebuild_revenue, revenue_lock

    try:
        revenue_lock(session)  # a rollup running meanwhile waits, then finds its batch taken
        ceiling = int(session.scalar(select(func.max(Attribution.id))) or 0)
        session.execute(delete(Attribution))
        attributed = seen = 0
        after = 0
        while True:
            ids = list(session.scalars(select(Event.id).where(Event.id > after).order_by(Event.id).limit(2000)))
            if not ids:
                break
            attributed += attribute(session, config, ids)
            seen += len(ids)
            after = ids[-1]
            if progress is not None:
                progress(len(ids))
        rebuild_revenue(session, floor=ceiling)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return {"events": seen, "attributed": attributed}


def event_count(session: Session) -> int:
    """How many events :func:`recompute` looks at."""
    return int(session.scalar(select(func.count(Event.id))) or 0)
