"""What uses a segment or a template: the rules' current plans (the active version, and the newest version when
it is a draft: activating it would use them too), other segments, and double opt-in forms (their confirmation).

The admin UI and the API refuse the same things with these: deleting a segment or template in use, and a
condition that would put a segment in itself.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, literal, select
from sqlalchemy.orm import Session

from .contacts import InvalidInput
from .models import Form, Rule, RuleVersion, Segment, Template
from .segments import compile_condition


def _named(node: Any) -> Iterator[str]:
    """Every segment name a compiled plan (or any part of it) tests: its ``{"segment": name}`` nodes."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "segment" and isinstance(value, str):
                yield value
            else:
                yield from _named(value)
    elif isinstance(node, list):
        for item in node:
            yield from _named(item)


def current_plans(session: Session) -> list[tuple[int, str, dict[str, Any], bool]]:
    """(rule id, rule name, plan, whether it is the active version) of every rule's active version and of its
    newest version when that is a draft."""
    newest = (
        select(RuleVersion.rule_id, func.max(RuleVersion.number).label("number"))
        .group_by(RuleVersion.rule_id)
        .subquery()
    )
    drafts = (
        select(RuleVersion.rule_id, RuleVersion.plan, literal(False).label("active"))
        .join(newest, (newest.c.rule_id == RuleVersion.rule_id) & (newest.c.number == RuleVersion.number))
        .where(RuleVersion.activated_at.is_(None))
    )
    active = select(RuleVersion.rule_id, RuleVersion.plan, literal(True).label("active")).join(
        Rule, Rule.active_version_id == RuleVersion.id
    )
    rows = session.execute(active.union_all(drafts)).all()
    names = dict(session.execute(select(Rule.id, Rule.name).where(Rule.id.in_({r[0] for r in rows}))).all())
    return [(rule_id, names[rule_id], plan or {}, bool(is_active)) for rule_id, plan, is_active in rows]


def using_rules(session: Session, name: str) -> list[str]:
    """The names of the rules whose active version, or whose newest version when it is a draft, uses *name*."""
    return sorted({rule for _id, rule, plan, _active in current_plans(session) if name in set(_named(plan))})


@dataclass(frozen=True)
class Use:
    """A rule that sends a template: its id and name, and whether the version that does is the active one."""

    rule_id: int
    rule: str
    active: bool

    def __str__(self) -> str:
        return self.rule if self.active else f"{self.rule} (draft)"


def template_uses(session: Session) -> dict[tuple[str, str], list[Use]]:
    """``{(channel, template): [Use, …]}`` over every rule's current plans (a draft's use counts too)."""
    found: dict[tuple[str, str], dict[int, Use]] = defaultdict(dict)
    for rule_id, rule, plan, active in current_plans(session):
        for step in plan.get("steps", []):
            if step.get("op") == "send":
                known = found[step["channel"], step["name"]].get(rule_id)
                if known is None or (active and not known.active):
                    found[step["channel"], step["name"]][rule_id] = Use(rule_id, rule, active)
    return {key: sorted(uses.values(), key=lambda u: u.rule.lower()) for key, uses in found.items()}


def uses_of(session: Session, channel: str, name: str) -> list[Use]:
    """The rules that send template *name* of *channel*."""
    return template_uses(session).get((channel, name), [])


def using_segments(session: Session, name: str) -> list[str]:
    """The names of the other segments whose condition tests ``in segment "<name>"``."""
    out = []
    for other, text in session.execute(select(Segment.name, Segment.condition).where(Segment.name != name)):
        try:
            tree = compile_condition(session, text, sql=False).tree
        except InvalidInput:  # a stored condition that no longer checks uses nothing it can run
            continue
        if name in set(_named(tree)):
            out.append(other)
    return sorted(out)


def loop_through(session: Session, tree: Any, name: str) -> list[str] | None:
    """The chain of segments by which *tree* (the new condition of segment *name*) tests *name* itself, or None.

    A segment in itself has no members to find (its count would never end): such a condition is refused.
    """
    stored: dict[str, str] = dict(session.execute(select(Segment.name, Segment.condition)).all())
    seen: set[str] = set()

    def walk(node: Any, path: list[str]) -> list[str] | None:
        for used in _named(node):
            if used == name:
                return [*path, used]
            if used in seen or used not in stored:
                continue
            seen.add(used)
            try:
                inner = compile_condition(session, stored[used], sql=False).tree
            except InvalidInput:
                continue
            found = walk(inner, [*path, used])
            if found:
                return found
        return None

    return walk(tree, [])


def users_of(session: Session, name: str) -> list[str]:
    """What uses segment *name*, as people read it: ``rule 'Welcome'``, ``segment 'VIPs'``; [] when nothing."""
    return [f"rule {r!r}" for r in using_rules(session, name)] + [
        f"segment {s!r}" for s in using_segments(session, name)
    ]


def loop_problem(session: Session, tree: Any, name: str) -> str | None:
    """Why the condition *tree* may not be segment *name*'s (it would contain itself), or None."""
    loop = loop_through(session, tree, name)
    if not loop:
        return None
    chain = " → ".join(repr(n) for n in [name, *loop])
    return f"the segment would be in itself ({chain}); test other segments or fields"


def confirming_forms(session: Session, row: Template) -> list[str]:
    """The slugs of the double opt-in forms that mail their confirmation with template *row* and would find none
    without it (a built-in template of its name takes over when there is one)."""
    from .engine.render import missing_template

    if missing_template(None, row.channel, row.name) is None:
        return []
    return forms_confirming_with(session, row.channel, row.name)


def forms_confirming_with(session: Session, channel: str, name: str) -> list[str]:
    """The slugs of the double opt-in forms that mail their confirmation with *channel*'s template *name*."""
    named = (Form.double_opt_in.is_(True), Form.channel == channel, Form.confirm_template == name)
    return list(session.scalars(select(Form.slug).where(*named).order_by(Form.slug)))


def lost_confirm_url(session: Session, channel: str, name: str, parts: dict[str, Any]) -> str | None:
    """What to say when new *parts* of template *name* drop ``{{ confirm_url }}`` while a double opt-in form mails
    its confirmation with it (nobody could confirm any more); None when they keep it or no form needs it."""
    from .forms import shows_confirm_url

    if any(shows_confirm_url(source) for source in parts.values() if isinstance(source, str)):
        return None
    forms = forms_confirming_with(session, channel, name)
    if not forms:
        return None
    return (
        f"the double opt-in form(s) {', '.join(repr(f) for f in forms)} mail their confirmation with this template: "
        "keep {{ confirm_url }}, the link that confirms, in it (or give the forms another confirmation template first)"
    )


__all__ = [
    "Use",
    "confirming_forms",
    "current_plans",
    "forms_confirming_with",
    "loop_problem",
    "loop_through",
    "lost_confirm_url",
    "template_uses",
    "users_of",
    "uses_of",
    "using_rules",
    "using_segments",
]
