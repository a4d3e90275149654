"""The editor's server side (docs/admin.md, "The rule editor"): vocabulary, validate and format.

Each answers the editor bundle's JSON (``{"source": …}`` in, diagnostics with their fixes out) and, for the plain
``<textarea>`` the page works with before the bundle loads, a form post answered with the editor's HTML: the
problems listed with one-click fixes (``/fix``), or the formatted text.
"""
from __future__ import annotations

from typing import Any

import dsl
from flask import abort, jsonify, render_template, request, url_for

from ...db import get_session
from ...engine.editing import EDITOR_FILE
from ...engine.vocabulary import editor_words
from ...models import Role, Rule
from ..access import current_role, requires
from . import bp
from .common import apply_fix, check, diagnostic_json, find_rule, form_source, json_source, plugins, wants_json


def area(rule: Rule | None, text: str, diagnostics: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """What ``admin/rules/_editor_area.html`` needs: the text, its problems (checked now when not given), the URLs."""
    if diagnostics is None:
        diagnostics = [diagnostic_json(d) for d in check(text, rule).diagnostics]
    role = current_role()
    rule_id = rule.id if rule is not None else None
    return {"text": text, "diagnostics": diagnostics, "readonly": role is None or not role.allows(Role.EDITOR),
            "urls": {"vocabulary": url_for("rules.vocabulary"),
                     "validate": url_for("rules.validate", rule_id=rule_id),
                     "format": url_for("rules.format_rule"),
                     "fix": url_for("rules.fix", rule_id=rule_id)}}


def _area(rule: Rule | None, text: str, diagnostics: list[dict[str, Any]] | None = None, status: int = 200):
    return render_template("admin/rules/_editor_area.html", **area(rule, text, diagnostics)), status


@bp.get("/vocabulary")
@requires(Role.VIEWER)
def vocabulary():
    """The names the editor completes: events, fields, tags, templates per channel, segments, channels, steps."""
    return jsonify(editor_words(get_session(), plugins()))


@bp.post("/validate", defaults={"rule_id": None})
@bp.post("/<int:rule_id>/validate")
@requires(Role.VIEWER, writes=Role.VIEWER)  # it only reads: a viewer's read-only editor shows the problems too
def validate(rule_id: int | None):
    """The checker's diagnostics for the editor's text (as a new rule, or a new version of *rule_id*)."""
    rule = find_rule(rule_id)
    if wants_json():
        return jsonify({"diagnostics": [diagnostic_json(d) for d in check(json_source(), rule).diagnostics]})
    return _area(rule, form_source())


@bp.post("/format")
@requires(Role.EDITOR)
def format_rule():
    """``nudge fmt``: the text in canonical form, or the syntax errors that keep it from being formatted."""
    text = json_source() if wants_json() else form_source()
    parsed = dsl.parse(text, EDITOR_FILE)
    if parsed.program is None:
        diagnostics = [diagnostic_json(d) for d in parsed.diagnostics]
        if wants_json():
            return jsonify({"diagnostics": diagnostics})
        return _area(find_rule(request.form.get("rule_id", type=int)), text, diagnostics, 422)
    formatted = dsl.format_program(parsed.program)
    if wants_json():
        return jsonify({"source": formatted})
    return _area(find_rule(request.form.get("rule_id", type=int)), formatted)


@bp.post("/fix", defaults={"rule_id": None})
@bp.post("/<int:rule_id>/fix")
@requires(Role.EDITOR)
def fix(rule_id: int | None):
    """Apply one fix of a diagnostic (its span and text, as listed) to the posted text; the editor, checked again."""
    rule = find_rule(rule_id)
    text = form_source()
    try:
        span = [int(request.form.get(name, "")) for name in ("line", "col", "end_line", "end_col")]
    except ValueError:
        abort(422, description="A fix needs its line, col, end_line and end_col as numbers; check the rule again.")
    fixed = apply_fix(text, *span, request.form.get("insert", ""))
    if fixed is None:
        abort(422, description="That fix no longer fits the text (it changed since it was checked); "
                               "check the rule again.")
    return _area(rule, fixed)
