"""The rules list and each rule's page: edit, save drafts, versions and their diff, activate (plan first), pause."""

from __future__ import annotations

import difflib
import os
from typing import Any

from flask import abort, current_app, redirect, render_template, request, url_for
from sqlalchemy import select

from ...contacts import audit
from ...db import get_session
from ...engine import rules as store
from ...engine.apply import ApplyResult, format_changes, replan_timers
from ...engine.editing import activate as activate_version
from ...engine.editing import plan_activation, save_draft
from ...engine.rulestats import STATUSES, rule_rows
from ...engine.timeutil import to_ts
from ...engine.tryit import MadeUp, cases_of, rerun_cases, sample_timeline
from ...models import Role, Rule, RuleVersion, utcnow
from ..access import actor, current_role, requires
from ..flash import is_htmx, notify
from . import bp
from .common import MAX_ID, applied_from, check, diagnostic_json, email, find_rule, form_source, new_and_saved, plugins
from .contract import area

NEW_RULE = 'rule "New rule"\nwhen contact.created then\nend\n'


# -- the list ----------------------------------------------------------------------------------------------------
@bp.get("/")
@requires(Role.VIEWER)
def index():
    status = request.args.get("status", "")
    text = request.args.get("q", "").strip()[:200]
    if status and status not in STATUSES:
        abort(400, description=f"status must be one of {', '.join(STATUSES)} (or empty for every rule).")
    rows = rule_rows(get_session(), to_ts(utcnow()), status or None, text or None)
    context = {"rows": rows, "status": status, "q": text, "statuses": STATUSES}
    if is_htmx() and request.headers.get("HX-Target") == "rules-table":
        return render_template("admin/rules/_table.html", **context)
    return render_template("admin/rules/list.html", **context)


# -- one rule ----------------------------------------------------------------------------------------------------
def _versions(rule: Rule | None) -> list[RuleVersion]:
    if rule is None:
        return []
    return list(
        get_session().scalars(
            select(RuleVersion).where(RuleVersion.rule_id == rule.id).order_by(RuleVersion.number.desc())
        )
    )


def _version(rule: Rule, number: Any) -> RuleVersion:
    try:
        wanted = int(number)
    except (TypeError, ValueError):
        abort(400, description="version must be a version number such as 2.")
    version = (
        get_session().scalar(select(RuleVersion).where(RuleVersion.rule_id == rule.id, RuleVersion.number == wanted))
        if 0 < wanted <= MAX_ID  # a number no row holds (and no database takes): no such version
        else None
    )
    if version is None:
        abort(404, description=f"Rule {rule.name!r} has no version {wanted}; its versions are listed on its page.")
    return version


def editor_bundle() -> bool:
    """Whether the CodeMirror bundle is built (``make assets``); without it the page works with a plain textarea."""
    return os.path.exists(os.path.join(current_app.static_folder or "", "dist", "editor.js"))


def _page(
    rule: Rule | None,
    text: str,
    diagnostics: list[dict[str, Any]] | None = None,
    status: int = 200,
    shown: RuleVersion | None = None,
    made_up: MadeUp | None = None,
    timeline: str | None = None,
):
    versions = _versions(rule)
    active = next((v for v in versions if rule is not None and v.id == rule.active_version_id), None)
    shown = shown or (versions[0] if versions else None)
    session = get_session()
    plan = shown.plan if shown is not None else None
    role = current_role()
    made_up = made_up or MadeUp(
        {"email": "ana@example.com", "first_name": "Ana"}, [], current_app.config.get("DEFAULT_TIMEZONE") or "UTC", {}
    )
    return render_template(
        "admin/rules/editor.html",
        rule=rule,
        versions=versions,
        active=active,
        shown=shown,
        area=area(rule, text, diagnostics),
        git=applied_from(rule),
        editor_bundle=editor_bundle(),
        can_edit=role is not None and role.allows(Role.EDITOR),
        cases=cases_of(session, rule.id) if rule is not None else [],
        made_up=made_up,
        channels=sorted(plugins().channels),
        timeline=timeline or sample_timeline(plan, utcnow()),
    ), status


@bp.get("/new")
@requires(Role.EDITOR)
def new():
    return _page(None, NEW_RULE)


@bp.get("/<int:rule_id>")
@requires(Role.VIEWER)
def show(rule_id: int):
    rule = find_rule(rule_id)
    assert rule is not None
    versions = _versions(rule)
    shown = (
        _version(rule, request.args["version"]) if "version" in request.args else (versions[0] if versions else None)
    )
    return _page(rule, shown.source if shown is not None else "", shown=shown)


@new_and_saved("/new", "/<int:rule_id>", "save")
def save(rule: Rule | None):
    """Save the text as a draft: a new rule, or the rule's next version; nothing runs until it is activated."""
    text = form_source()
    result = check(text, rule)
    diagnostics = [diagnostic_json(d) for d in result.diagnostics]
    if result.plan is None:
        first = result.errors[0]
        notify(
            f"Not saved: {len(result.errors)} error(s); the first, line {first.line}, column {first.col}: "
            f"{first.message}. Fix them and save again.",
            "error",
        )
        return _page(rule, text, diagnostics, 422)
    session = get_session()
    rule, version = save_draft(session, rule, text, result.plan, email())
    if version is None:
        notify(f"Nothing to save: v{_versions(rule)[0].number} has this text already.", "info")
        return redirect(url_for("rules.show", rule_id=rule.id))
    audit(session, actor(), "rule.draft", "rule", rule.id, version=version.number)
    cases = rerun_cases(session, current_app, rule.id, text)
    session.commit()
    warned = sum(1 for d in result.diagnostics if not d.is_error)
    notify(
        f"Saved v{version.number} of {rule.name!r} as a draft"
        + (f" ({warned} warning(s))" if warned else "")
        + "; it runs once you activate it."
    )
    _report_cases(cases)
    return redirect(url_for("rules.show", rule_id=rule.id, version=version.number))


def _report_cases(cases: list[Any]) -> None:
    if not cases:
        return
    failing = [case for case in cases if not case.passed]
    if not failing:
        notify(f"All {len(cases)} test case(s) pass.", "info")
    for case in failing:
        notify(f"Test case {case.name!r} fails: {'; '.join(case.report or [])}", "warning")


# -- versions ----------------------------------------------------------------------------------------------------
def _with_versions(rule_id: int, lacking: str) -> tuple[Rule, list[RuleVersion]]:
    """The rule and its versions, newest first; a 404 saying *lacking* when it has none."""
    rule = find_rule(rule_id)
    assert rule is not None
    versions = _versions(rule)
    if not versions:
        abort(404, description=f"Rule {rule.name!r} has no {lacking}.")
    return rule, versions


def _unified(old: RuleVersion | None, new: RuleVersion) -> list[str]:
    """The lines of a unified diff from *old* (None: nothing) to *new*."""
    return list(
        difflib.unified_diff(
            old.source.splitlines() if old else [],
            new.source.splitlines(),
            f"v{old.number}" if old else "nothing",
            f"v{new.number}",
            lineterm="",
        )
    )


@bp.get("/<int:rule_id>/diff")
@requires(Role.VIEWER)
def diff(rule_id: int):
    """Two versions side by side (the editor bundle's viewer), with a plain unified diff under them."""
    rule, versions = _with_versions(rule_id, "versions to compare")
    old = _version(rule, request.args.get("old", versions[min(1, len(versions) - 1)].number))
    new = _version(rule, request.args.get("new", versions[0].number))
    return render_template(
        "admin/rules/diff.html",
        rule=rule,
        versions=versions,
        old=old,
        new=new,
        lines=_unified(old, new),
        editor_bundle=editor_bundle(),
    )


# -- activate, pause, resume -------------------------------------------------------------------------------------
@bp.get("/<int:rule_id>/activate")
@requires(Role.EDITOR)
def activate_plan(rule_id: int):
    """What activating a version would do, exactly as ``nudge apply --plan`` prints it, before confirming."""
    rule, versions = _with_versions(rule_id, "version to activate; save one first")
    version = _version(rule, request.args.get("version", versions[0].number))
    session = get_session()
    change = plan_activation(session, rule, version)
    active = next((v for v in versions if v.id == rule.active_version_id), None)
    return render_template(
        "admin/rules/activate.html",
        rule=rule,
        version=version,
        active=active,
        change=change,
        plan=format_changes(ApplyResult(rules=[change])),
        lines=_unified(active, version),
        git=applied_from(rule),
        cases=cases_of(session, rule.id),
    )


@bp.post("/<int:rule_id>/activate")
@requires(Role.EDITOR)
def activate(rule_id: int):
    """Make the chosen version the one that runs; with ``migrate``, contacts mid-journey move to it at the same step."""
    rule = find_rule(rule_id)
    assert rule is not None
    version = _version(rule, request.form.get("version"))
    migrate = request.form.get("migrate", "") == "yes"
    session = get_session()
    change = activate_version(session, current_app, rule, version, migrate)
    audit(session, actor(), "rule.activate", "rule", rule.id, version=version.number, migrate=migrate)
    cases = rerun_cases(session, current_app, rule.id, version.source) if change.action != "unchanged" else []
    session.commit()
    notify(f"Activated v{version.number} of {rule.name!r}.")
    for line in format_changes(ApplyResult(rules=[change])):
        notify(line.strip(), "info")
    _report_cases(cases)
    return redirect(url_for("rules.show", rule_id=rule.id))


def _set_state(rule_id: int, verb: str):
    rule = find_rule(rule_id)
    assert rule is not None
    session = get_session()
    try:
        getattr(store, verb)(session, rule.name)
    except store.RuleStateError as exc:
        abort(409, description=f"Not {verb}d: {exc}.")
    if verb == "resume":  # its timers fell away while it was paused
        replan_timers(session, current_app, [store.RuleChange(rule.name, "resume")])
    audit(session, actor(), f"rule.{verb}d", "rule", rule.id)
    session.commit()
    held = store.in_flight(session, rule.id)
    notify(
        f"Paused {rule.name!r}: nobody enters; {held} contact(s) mid-journey wait where they are."
        if verb == "pause"
        else f"Resumed {rule.name!r}: it runs again, and {held} contact(s) mid-journey go on."
    )
    return redirect(url_for("rules.show", rule_id=rule.id))


@bp.post("/<int:rule_id>/pause")
@requires(Role.EDITOR)
def pause(rule_id: int):
    return _set_state(rule_id, "pause")


@bp.post("/<int:rule_id>/resume")
@requires(Role.EDITOR)
def resume(rule_id: int):
    return _set_state(rule_id, "resume")


__all__ = ["NEW_RULE", "editor_bundle"]
