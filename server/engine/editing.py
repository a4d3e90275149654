"""One rule at a time, as the admin editor works on it: check its text, save drafts, plan and activate a version.

The checking is :func:`server.engine.rules.check_sources` against the instance's vocabulary, exactly what
``nudge check`` and ``nudge apply`` run, plus what holding one rule in one editor needs: the text is one
rule, named with ``rule "Name"``, whose name is free (a new rule) or stays the same (an existing one).
Activating shows, then makes, the change ``nudge apply --plan`` prints (:func:`plan_activation`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import dsl

from ..models import Rule, RuleStatus, RuleVersion, utcnow
from .rules import RuleChange, check_sources, make_active, new_version, plan_changes
from .vocabulary import instance_vocabulary

#: the file name the editor's text is checked under (diagnostics name it; nothing is written)
EDITOR_FILE = "rule.nudge"
#: the largest rule text the editor takes, in characters
MAX_TEXT = 200_000


@dataclass
class RuleCheck:
    """The editor's text, checked: every diagnostic (structured, with fixes) and, when there is no error, its plan."""

    diagnostics: list[Any] = field(default_factory=list)
    plan: dict[str, Any] | None = None

    @property
    def errors(self) -> list[Any]:
        return [d for d in self.diagnostics if d.is_error]


def _problem(line: int, message: str, hint: str) -> Any:
    return dsl.Diagnostic(dsl.ERROR, EDITOR_FILE, line, 1, message, hint)


def check_rule_text(session: Session, plugins: Any, text: str, rule: Rule | None) -> RuleCheck:
    """Check *text* as the one rule of the editor: a new rule when *rule* is None, else a new version of *rule*."""
    if len(text) > MAX_TEXT:
        return RuleCheck(
            [
                _problem(
                    1,
                    f"the rule is {len(text):,} characters long; the editor takes at most {MAX_TEXT:,}",
                    "split it into several rules",
                )
            ]
        )
    checked = check_sources([(EDITOR_FILE, text)], instance_vocabulary(session, plugins))
    result = RuleCheck(sorted(checked.diagnostics, key=dsl.diagnostics.sort_key))
    if result.errors:
        return result
    plans = checked.plans
    problem = None
    if not plans:
        problem = _problem(
            1, "there is no rule here yet", 'write one: `rule "Name"`, then `when EVENT then`, its steps and `end`'
        )
    elif len(plans) > 1:
        problem = _problem(
            plans[1]["line"],
            "the editor holds one rule; this is a second one",
            "move it into a rule of its own (New rule on the rules list)",
        )
    elif plans[0]["name"] == f"{EDITOR_FILE}:{plans[0]['line']}":
        problem = _problem(
            plans[0]["line"], "this rule has no name", 'start it with `rule "Name"` on the line above `when`'
        )
    elif rule is None and session.scalar(select(Rule.id).where(Rule.name == plans[0]["name"])) is not None:
        problem = _problem(
            plans[0]["line"],
            f"a rule named {plans[0]['name']!r} exists already",
            "open it from the rules list to change it, or give this one another name",
        )
    elif rule is not None and plans[0]["name"] != rule.name:
        problem = _problem(
            plans[0]["line"],
            f"this rule is named {rule.name!r}; a saved rule keeps its name",
            f'keep `rule "{rule.name}"`, or make a new rule with the new name',
        )
    if problem is not None:
        result.diagnostics.append(problem)
    else:
        result.plan = plans[0]
    return result


def newest_version(session: Session, rule_id: int) -> RuleVersion | None:
    return session.scalar(
        select(RuleVersion).where(RuleVersion.rule_id == rule_id).order_by(RuleVersion.number.desc()).limit(1)
    )


def save_draft(
    session: Session, rule: Rule | None, text: str, plan: dict[str, Any], actor: str
) -> tuple[Rule, RuleVersion | None]:
    """Save *text* (checked into *plan*) as the rule's next version without activating it.

    A new rule (*rule* None) starts as a draft: the engine runs no rule without an active version.

    :return: the rule and the new version; None when the text is the newest version's already.
    """
    if rule is None:
        rule = Rule(name=plan["name"], status=RuleStatus.DRAFT.value, origin="editor")
        session.add(rule)
        session.flush()
    else:
        newest = newest_version(session, rule.id)
        if newest is not None and newest.source == text:
            return rule, None
    version = new_version(session, rule, plan, text, actor)
    rule.updated_at = utcnow()
    return rule, version


def plan_activation(session: Session, rule: Rule, version: RuleVersion) -> RuleChange:
    """What activating *version* would do, as ``nudge apply --plan`` says it (nothing is changed)."""
    change = plan_changes(session, [{**version.plan, "name": rule.name}])[0]
    if change.action in ("create", "update"):
        change.version = version.number
    return change


def activate(session: Session, app: Any, rule: Rule, version: RuleVersion, migrate: bool) -> RuleChange:
    """Make *version* the one that runs (in the caller's transaction); plan its timers.

    :param migrate: move contacts mid-journey to the same step of *version*, as ``nudge apply --migrate``.
    """
    from .apply import replan_timers

    change = plan_activation(session, rule, version)
    make_active(session, rule, version, change, migrate)
    session.flush()
    replan_timers(session, app, [change])
    return change


__all__ = [
    "EDITOR_FILE",
    "MAX_TEXT",
    "RuleCheck",
    "activate",
    "check_rule_text",
    "newest_version",
    "plan_activation",
    "save_draft",
]
