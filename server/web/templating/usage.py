"""Which rules use a template: the ``send`` steps of each rule's active version and of its newest draft."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...models import Rule, RuleVersion


@dataclass(frozen=True)
class Use:
    """A rule that sends a template: its id and name, and whether the version that does is the active one."""

    rule_id: int
    rule: str
    active: bool

    def __str__(self) -> str:
        return self.rule if self.active else f"{self.rule} (draft)"


def template_uses(session: Session) -> dict[tuple[str, str], list[Use]]:
    """``{(channel, template): [Use, …]}`` over every rule's active version and its newest draft after it.

    A draft counts: activating it would send the template, so deleting the template would break it.
    """
    by_id: dict[int, RuleVersion] = {}
    newest: dict[int, RuleVersion] = {}
    for version in session.scalars(select(RuleVersion).order_by(RuleVersion.rule_id, RuleVersion.number)):
        by_id[version.id] = newest[version.rule_id] = version
    found: dict[tuple[str, str], dict[int, Use]] = defaultdict(dict)
    for rule in session.scalars(select(Rule)):
        chosen = [by_id[rule.active_version_id]] if rule.active_version_id in by_id else []
        draft = newest.get(rule.id)
        if draft is not None and draft.activated_at is None:
            chosen.append(draft)
        for version in chosen:
            active = version.id == rule.active_version_id
            for step in (version.plan or {}).get("steps", []):
                if step.get("op") == "send":
                    known = found[step["channel"], step["name"]].get(rule.id)
                    if known is None or (active and not known.active):
                        found[step["channel"], step["name"]][rule.id] = Use(rule.id, rule.name, active)
    return {key: sorted(uses.values(), key=lambda u: u.rule.lower()) for key, uses in found.items()}


def uses_of(session: Session, channel: str, name: str) -> list[Use]:
    """The rules that send template *name* of *channel*."""
    return template_uses(session).get((channel, name), [])


__all__ = ["Use", "template_uses", "uses_of"]
