"""The rules list's figures: each rule's status, versions, contacts in it now, entries and completions lately,
and its last change with who made it. A few grouped queries, whatever the number of rules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, exists, func, or_, select, text
from sqlalchemy.orm import Session

from ..models import Enrolment, EnrolmentState, Rule, RuleStatus, RuleVersion
from ..models.journeys import ACTIVE_ROWS, NOT_ACTIVE_ROWS

#: the statuses the list filters on; "draft" also finds rules with a saved, not yet activated version
STATUSES = ("active", "paused", "draft")
#: the window of the list's "entered" and "completed" figures
RECENT = 7 * 86400


@dataclass(frozen=True)
class RuleRow:
    """One rule as the list shows it."""

    id: int
    name: str
    status: str
    origin: str | None
    active: int | None  # the active version's number
    draft: int | None  # the newest version's number, when it is a draft newer than the active one
    in_flight: int  # contacts in it now (held ones of a paused rule included)
    entered: int  # contacts that entered in the last 7 days
    completed: int  # journeys that finished every step in the last 7 days
    changed_at: datetime  # when its newest version was saved
    changed_by: str | None  # who saved it (an email, ``apply:<file>``, ``api:<key prefix>``)


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def rule_rows(session: Session, now: int, status: str | None = None, text: str | None = None) -> list[RuleRow]:
    """Every rule matching the filters, by name.

    :param now: the engine's clock (UNIX seconds): "the last 7 days" end there.
    :param status: one of :data:`STATUSES`, or None for all.
    :param text: found in the rule's name or in the text of any of its versions (case-insensitive).
    """
    query = select(Rule).order_by(Rule.name)
    if text:
        pattern = _like(text)
        query = query.where(
            or_(
                Rule.name.ilike(pattern, escape="\\"),
                exists().where(RuleVersion.rule_id == Rule.id, RuleVersion.source.ilike(pattern, escape="\\")),
            )
        )
    if status in (RuleStatus.ACTIVE.value, RuleStatus.PAUSED.value):
        query = query.where(Rule.status == status)
    rules = list(session.scalars(query))
    ids = [rule.id for rule in rules]
    if not ids:
        return []
    versions: dict[int, list[Any]] = {}
    for row in session.execute(
        select(
            RuleVersion.rule_id,
            RuleVersion.id,
            RuleVersion.number,
            RuleVersion.created_at,
            RuleVersion.actor,
            RuleVersion.activated_at,
        )
        .where(RuleVersion.rule_id.in_(ids))
        .order_by(RuleVersion.number)
    ):
        versions.setdefault(row.rule_id, []).append(row)
    since = now - RECENT
    in_flight, entered, completed = _counts(session, ids, since)
    out = []
    for rule in rules:
        mine = versions.get(rule.id, [])
        active = next((v.number for v in mine if v.id == rule.active_version_id), None)
        newest = mine[-1] if mine else None
        draft = (
            newest.number
            if newest is not None and newest.activated_at is None and newest.number > (active or 0)
            else None
        )
        if status == RuleStatus.DRAFT.value and rule.status != status and draft is None:
            continue
        out.append(
            RuleRow(
                rule.id,
                rule.name,
                rule.status,
                rule.origin,
                active,
                draft,
                in_flight.get(rule.id, 0),
                entered.get(rule.id, 0),
                completed.get(rule.id, 0),
                newest.created_at if newest is not None else rule.updated_at,
                newest.actor if newest is not None else None,
            )
        )
    return out


def _counts(session: Session, ids: list[int], since: int) -> tuple[dict[int, int], dict[int, int], dict[int, int]]:
    """Per rule: contacts in it now (held ones included), entered since *since*, completed since *since*.

    Two ranges of two partial indexes, no table rows: the active journeys (most are waiting) from
    ``ix_enrolments_rule_active`` (rule, entered, state), the others from ``ix_enrolments_rule_state`` (rule, state,
    entered, finished).
    """
    in_flight: dict[int, int] = {}
    entered: dict[int, int] = {}
    completed: dict[int, int] = {}
    recent = func.sum(case((Enrolment.entered >= since, 1), else_=0))
    active = session.execute(
        select(Enrolment.rule_id, func.count(), recent)
        .where(Enrolment.rule_id.in_(ids), text(ACTIVE_ROWS))  # the index's own text: SQLite matches it
        .group_by(Enrolment.rule_id)
    )
    for rule_id, count, new in active:
        in_flight[rule_id] = count
        entered[rule_id] = new or 0
    others = session.execute(
        select(
            Enrolment.rule_id,
            Enrolment.state,
            func.count(),
            recent,
            func.sum(case((Enrolment.finished >= since, 1), else_=0)),
        )
        .where(Enrolment.rule_id.in_(ids), text(NOT_ACTIVE_ROWS))
        .group_by(Enrolment.rule_id, Enrolment.state)
    )
    for rule_id, state, count, new, finished in others:
        if state == EnrolmentState.HELD:
            in_flight[rule_id] = in_flight.get(rule_id, 0) + count
        if state == EnrolmentState.DONE:
            completed[rule_id] = completed.get(rule_id, 0) + (finished or 0)
        entered[rule_id] = entered.get(rule_id, 0) + (new or 0)
    return in_flight, entered, completed


__all__ = ["RECENT", "STATUSES", "RuleRow", "rule_rows"]
