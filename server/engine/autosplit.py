"""Auto-winner splits in the engine: decide outcomes, keep each test's state, assign arms, end a test by hand.

The algorithm is :mod:`server.stats.autowinner` (pure); this module feeds it counts from the database. Outcomes are
worked out when the next contact reaches the split (and when a test is ended or read): an assignment is decided
when a human ``EVENT`` of its contact occurred within ``[assigned, assigned + window]`` (a success) or its window
passed without one. Machine events (an image proxy, a link scanner) never count. See docs/optimisation.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from dsl.plan import Arm, SplitOp

from ..models import Event, Rule, RuleVersion, SplitAssignment, SplitTest
from ..stats.autowinner import ArmCounts, AutoSettings, Evidence, choose, evidence, seed_for
from .machine_events import is_machine
from .timeutil import to_dt, to_ts

__all__ = ["SplitEndError", "assign", "auto_splits", "describe_choice", "end_test", "settings_from", "test_state"]


class SplitEndError(Exception):
    """Ending a test by hand is not possible: no such rule, split or arm (the message says which)."""


def settings_from(config: Mapping[str, Any]) -> AutoSettings:
    """The SPLIT_AUTO_* settings (defaults where a config lacks them)."""
    return AutoSettings(
        floor=float(config.get("SPLIT_AUTO_FLOOR", 0.1)),
        min_decided=int(config.get("SPLIT_AUTO_MIN_DECIDED", 200)),
        probability=float(config.get("SPLIT_AUTO_PROB", 0.95)),
        loss=float(config.get("SPLIT_AUTO_LOSS", 0.01)),
    )


def _test_row(session: Session, rule_id: int, step_id: str) -> SplitTest:
    test = session.scalar(select(SplitTest).where(SplitTest.rule_id == rule_id, SplitTest.step_id == step_id))
    if test is None:
        test = SplitTest(rule_id=rule_id, step_id=step_id, version=0)
        session.add(test)
        session.flush()
    return test


def _decide(session: Session, test: SplitTest, event: str, now: int) -> bool:
    """Decide the test's open assignments whose outcome arrived or whose window passed; whether any was."""
    open_rows = session.execute(
        select(SplitAssignment.id, SplitAssignment.contact_id, SplitAssignment.assigned_at, SplitAssignment.deadline)
        .where(SplitAssignment.test_id == test.id, SplitAssignment.decided.is_(False))
        .order_by(SplitAssignment.id)
    ).all()
    if not open_rows:
        return False
    earliest = min(row.assigned_at for row in open_rows)
    contacts = {row.contact_id for row in open_rows}
    happened: dict[int, list[int]] = {}
    events = session.execute(
        select(Event.contact_id, Event.occurred_at, Event.props).where(
            Event.name == event,
            Event.contact_id.in_(contacts),
            Event.occurred_at >= to_dt(earliest),
            Event.occurred_at <= to_dt(now),
        )
    )
    for contact_id, occurred_at, props in events:
        if not is_machine(props):
            happened.setdefault(contact_id, []).append(to_ts(occurred_at))
    changed = False
    for row in open_rows:
        hits = [at for at in happened.get(row.contact_id, ()) if row.assigned_at <= at <= row.deadline]
        if hits:
            values: dict[str, Any] = {"decided": True, "outcome_at": min(hits)}
        elif row.deadline <= now:
            values = {"decided": True}
        else:
            continue
        session.execute(update(SplitAssignment).where(SplitAssignment.id == row.id).values(**values))
        changed = True
    return changed


def _counts(session: Session, test: SplitTest, arms: list[Arm]) -> list[ArmCounts]:
    rows = session.execute(
        select(
            SplitAssignment.arm,
            func.count(),
            func.sum(case((SplitAssignment.decided.is_(True), 1), else_=0)),
            func.count(SplitAssignment.outcome_at),
        )
        .where(SplitAssignment.test_id == test.id)
        .group_by(SplitAssignment.arm)
    ).all()
    by_arm = {arm: (int(n), int(decided or 0), int(successes)) for arm, n, decided, successes in rows}
    return [ArmCounts(arm["name"], int(arm["share"]), *by_arm.get(arm["name"], (0, 0, 0))) for arm in arms]


def _refresh(
    session: Session, test: SplitTest, op: SplitOp, settings: AutoSettings, now: int
) -> tuple[list[ArmCounts], Evidence]:
    """Bring *test* up to *now*: decide outcomes, recount, declare a winner when one is due; store the evidence."""
    auto = op["auto"]
    if _decide(session, test, auto["event"], now):
        test.version += 1
    counts = _counts(session, test, op["arms"])
    state = evidence(counts, settings)
    if test.winner is None and state.winner is not None:
        test.winner, test.declared_at, test.declared_by = state.winner, now, "engine"
    test.evidence = {**state.to_dict(), "version": test.version, "updated_at": now}
    return counts, state


def assign(
    session: Session, config: Mapping[str, Any], rule_id: int, op: SplitOp, contact_id: int, now: int
) -> tuple[Arm, dict[str, Any]]:
    """The arm of an auto-winner split for *contact_id*, recorded, and why (for the trace).

    Deterministic: the seed is the contact, the rule, the step and the test's state version.
    """
    settings = settings_from(config)
    test = _test_row(session, rule_id, op["id"])
    names = [arm["name"] for arm in op["arms"]]
    if test.winner is not None and test.winner in names:  # the test is over: its evidence stays as declared
        state = Evidence("winner", list((test.evidence or {}).get("arms", [])), test.winner)
        index, reason, draws = names.index(test.winner), f"winner (declared by {test.declared_by})", None
    else:
        counts, state = _refresh(session, test, op, settings, now)
        earlier = session.scalar(
            select(SplitAssignment.arm)
            .where(SplitAssignment.test_id == test.id, SplitAssignment.contact_id == contact_id)
            .order_by(SplitAssignment.id.desc())
            .limit(1)
        )
        if test.winner is None and earlier in names:  # a contact back in the journey keeps its arm, counted once
            again = {"reason": "assigned before", "phase": state.phase, "version": test.version}
            return op["arms"][names.index(str(earlier))], again
        if test.winner is not None:
            index, reason, draws = names.index(test.winner), "winner (declared just now)", None
        else:
            choice = choose(counts, settings, seed_for(contact_id, rule_id, op["id"], test.version), state)
            index, reason, draws = choice.index, choice.reason, choice.draws
    arm = op["arms"][index]
    session.add(
        SplitAssignment(
            test_id=test.id,
            contact_id=contact_id,
            arm=arm["name"],
            assigned_at=now,
            deadline=now + int(op["auto"]["seconds"]),
            decided=False,
        )
    )
    if test.evidence and test.winner is None:  # the stored counts include this contact (a new dict: JSON)
        arms = [dict(row, assigned=row["assigned"] + (row["name"] == arm["name"])) for row in test.evidence["arms"]]
        test.evidence = {**test.evidence, "arms": arms}
    why: dict[str, Any] = {"reason": reason, "phase": "winner" if test.winner is not None else state.phase}
    why["version"] = test.version
    why["posteriors"] = {row["name"]: [row["alpha"], row["beta"]] for row in state.arms}
    why["p_best"] = {row["name"]: row["p_best"] for row in state.arms}
    if draws is not None:
        why["draws"] = dict(zip(names, (round(d, 6) for d in draws), strict=True))
    return arm, why


def describe_choice(why: Mapping[str, Any]) -> str:
    """Why an auto-winner split gave a contact its arm, in words (``nudge explain``), from the trace's ``auto``."""
    reasons = {
        "starting share": "by the starting shares (too few decided outcomes to shift yet)",
        "floor": "by the floor share every arm keeps while the test explores",
        "thompson draw": "by Thompson sampling: its draw from its posterior was the highest",
        "assigned before": "the arm this contact got when it first reached the split",
    }
    reason = str(why.get("reason", ""))
    text = reasons.get(reason, reason)
    parts = []
    for name, (alpha, beta) in (why.get("posteriors") or {}).items():
        p_best = (why.get("p_best") or {}).get(name)
        draw = (why.get("draws") or {}).get(name)
        parts.append(
            f"{name} Beta({alpha:g}, {beta:g})"
            + (f" P(best) {p_best:.3f}" if p_best is not None else "")
            + (f" draw {draw:.4f}" if draw is not None else "")
        )
    return f"{text}; test state {why.get('version')}: " + "; ".join(parts)


def auto_splits(session: Session, rule_name: str) -> tuple[Rule, list[SplitOp]]:
    """Rule *rule_name* and the auto-winner splits of its active version.

    :raises SplitEndError: when there is no such rule, or it has no active version.
    """
    rule = session.scalar(select(Rule).where(Rule.name == rule_name))
    version = session.get(RuleVersion, rule.active_version_id) if rule and rule.active_version_id else None
    if rule is None or version is None:
        raise SplitEndError(f"no rule named {rule_name!r} with an active version: `nudge rules` lists them")
    return rule, [op for op in version.plan["steps"] if op.get("op") == "split" and op.get("auto")]


def _find_split(session: Session, rule_name: str, step: str) -> tuple[Rule, SplitOp]:
    rule, splits = auto_splits(session, rule_name)
    for op in splits:
        if step in (op["id"], str(op.get("line"))):
            return rule, op
    known = ", ".join(f"{op['id']} (line {op.get('line')})" for op in splits) or "none"
    raise SplitEndError(f"rule {rule_name!r} has no auto-winner split {step!r}; its auto-winner splits: {known}")


def test_state(session: Session, rule_id: int, op: SplitOp, config: Mapping[str, Any], now: int) -> dict[str, Any]:
    """A test's state for the stats and the API: phase, winner, when and by whom, the evidence (brought up to now)."""
    test = _test_row(session, rule_id, op["id"])
    _refresh(session, test, op, settings_from(config), now)
    return {
        "step": op["id"],
        "line": op.get("line"),
        "outcome": op["auto"]["event"],
        "window_seconds": op["auto"]["seconds"],
        "winner": test.winner,
        "declared_at": test.declared_at,
        "declared_by": test.declared_by,
        "evidence": test.evidence,
    }


def end_test(
    session: Session, config: Mapping[str, Any], rule_name: str, step: str, arm: str, actor: str, now: int
) -> dict[str, Any]:
    """End an auto-winner split by hand: *arm* becomes the winner every later contact gets; the caller audits it.

    :param step: the split's step id (``nudge stats`` shows it) or its line number.
    :raises SplitEndError: for an unknown rule, split or arm.
    """
    rule, op = _find_split(session, rule_name, step)
    names = [a["name"] for a in op["arms"]]
    if arm.upper() not in names:
        raise SplitEndError(f"split {op['id']} has no arm {arm!r}; its arms are {', '.join(names)}")
    test = _test_row(session, rule.id, op["id"])
    _refresh(session, test, op, settings_from(config), now)
    previous = test.winner
    test.winner, test.declared_at, test.declared_by = arm.upper(), now, actor[:64]
    session.flush()
    return {**test_state(session, rule.id, op, config, now), "previous_winner": previous}
