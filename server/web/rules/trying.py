""" "Try it" beside the editor: a made-up contact and a timeline through the real simulation, a sample timeline,
and tries kept as the rule's test cases (run again on every save)."""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, redirect, render_template, request, url_for
from sqlalchemy import func, select

from ...contacts import audit
from ...db import get_session
from ...engine.explain import describe
from ...engine.rules import RuleError
from ...engine.simulate import parse_time
from ...engine.tryit import MAX_CASES, MadeUp, TryError, TryResult, cases_of, sample_timeline, try_rule
from ...models import Role, Rule, RuleTest, utcnow
from ..access import actor, requires
from ..flash import is_htmx, notify
from . import bp
from .common import MAX_ID, check, email, find_rule, form_source, new_and_saved, plugins

#: the trace lines that are the rule's effects (the rest say why: waits, branches, timeouts)
EFFECTS = {"send", "suppressed", "tag", "untag", "set", "score", "note", "task", "notify"}


def made_up() -> MadeUp:
    """The panel's made-up contact, read from the form.

    :raises TryError: naming the input at fault.
    """
    consent = {channel: request.form.get(f"consent_{channel}", "") for channel in plugins().channels}
    return MadeUp.from_form(
        request.form.get("fields", ""), request.form.get("tags", ""), request.form.get("timezone", ""), consent
    )


def effect_rows(result: TryResult) -> list[dict[str, Any]]:
    """Each line of the simulation as the panel shows it: when, for whom, what, and the words of ``nudge explain``."""
    rows = []
    for effect in result.effects:
        data = {k: v for k, v in effect.items() if k not in ("at", "contact", "rule", "action")}
        if isinstance(data.get("until"), str):  # the simulation gives ISO times; the trace's words take seconds
            data["until"] = parse_time(data["until"], "until")
        rows.append(
            {
                "at": effect["at"],
                "contact": effect["contact"],
                "action": effect["action"],
                "text": describe(effect["action"], data),
                "effect": effect["action"] in EFFECTS,
            }
        )
    return rows


def _run(rule: Rule | None) -> tuple[MadeUp | None, str, TryResult | None, str | None]:
    timeline = request.form.get("timeline", "")
    try:
        contact = made_up()
        return contact, timeline, try_rule(get_session(), current_app, form_source(), contact, timeline), None
    except TryError as exc:
        return None, timeline, None, str(exc)
    except RuleError as exc:
        return (
            None,
            timeline,
            None,
            "The rule does not check, so it cannot run: "
            + "; ".join(line.splitlines()[0] for line in exc.diagnostics[:3]),
        )


@new_and_saved("/try", "/<int:rule_id>/try", "try_it")
def try_it(rule: Rule | None):
    """Run the editor's text for the made-up contact through the timeline; the effects, in time order."""
    _contact, _timeline, result, error = _run(rule)
    if result is None:
        return render_template("admin/rules/_try_result.html", error=error, rows=[], rule=rule), 422
    rows = effect_rows(result)
    return render_template(
        "admin/rules/_try_result.html",
        error=None,
        rows=rows,
        rule=rule,
        sends=len(result.sends),
        suppressed=sum(1 for r in rows if r["action"] == "suppressed"),
    )


@bp.post("/sample")
@requires(Role.EDITOR)
def sample():
    """A timeline to start from: the rule's trigger event now, then each event it waits for, a day apart."""
    plan = check(form_source(), find_rule(request.form.get("rule_id", type=int))).plan
    return render_template("admin/rules/_timeline_field.html", timeline=sample_timeline(plan, utcnow()))


@bp.post("/<int:rule_id>/tests")
@requires(Role.EDITOR)
def keep_case(rule_id: int):
    """Keep this try as a test case of the rule: it expects the sends it makes now, and runs on every save."""
    rule = find_rule(rule_id)
    assert rule is not None
    session = get_session()
    name = request.form.get("case_name", "").strip()
    problem = None
    if not name or len(name) > 255:
        problem = "Name the test case (at most 255 characters)."
    elif session.scalar(select(RuleTest.id).where(RuleTest.rule_id == rule.id, RuleTest.name == name)) is not None:
        problem = f"A test case named {name!r} exists already; choose another name, or delete that one."
    elif (session.scalar(select(func.count(RuleTest.id)).where(RuleTest.rule_id == rule.id)) or 0) >= MAX_CASES:
        problem = f"A rule keeps at most {MAX_CASES} test cases; delete one first."
    if problem is None:
        contact, timeline, result, problem = _run(rule)
    if problem is not None:
        notify(f"Test case not kept: {problem}", "error")
        return _cases(rule, 422)
    assert contact is not None and result is not None
    case = RuleTest(
        rule_id=rule.id,
        name=name,
        contact=contact.as_dict(),
        timeline=timeline,
        expected=result.sends,
        passed=True,
        report=[],
        run_at=utcnow(),
        actor=email(),
    )
    session.add(case)
    session.flush()
    audit(session, actor(), "rule.test_kept", "rule", rule.id, test=case.id)
    session.commit()
    notify(f"Kept test case {name!r}: it expects {len(result.sends)} send(s) and runs again on every save.")
    return _cases(rule)


@bp.post("/<int:rule_id>/tests/<int:case_id>/delete")
@requires(Role.EDITOR)
def delete_case(rule_id: int, case_id: int):
    rule = find_rule(rule_id)
    assert rule is not None
    session = get_session()
    case = session.get(RuleTest, case_id) if 0 < case_id <= MAX_ID else None
    if case is None or case.rule_id != rule.id:
        abort(404, description=f"Rule {rule.name!r} has no test case {case_id}; it may have been deleted.")
    session.delete(case)
    audit(session, actor(), "rule.test_deleted", "rule", rule.id, test=case_id)
    session.commit()
    notify(f"Deleted test case {case.name!r}.")
    return _cases(rule)


def _cases(rule: Rule, status: int = 200):
    """The rule's test cases for htmx (the flash in its header); a plain form post goes back to the rule's page."""
    if not is_htmx():
        return redirect(url_for("rules.show", rule_id=rule.id))
    return render_template(
        "admin/rules/_cases.html", rule=rule, cases=cases_of(get_session(), rule.id), can_edit=True
    ), status


__all__ = ["effect_rows", "made_up"]
