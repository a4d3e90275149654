"""The editor's server side (docs/admin.md, "The rule editor"): vocabulary, validate and format.

Each answers the editor bundle's JSON (``{"source": …}`` in, diagnostics with their fixes out) and, for the plain
``<textarea>`` the page works with before the bundle loads, a form post answered with the editor's HTML: the
problems listed with one-click fixes (``/fix``), or the formatted text.
"""

from __future__ import annotations

from typing import Any

from flask import abort, jsonify, render_template, request, url_for

import dsl

from ...db import get_session
from ...engine.editing import EDITOR_FILE
from ...engine.vocabulary import editor_words
from ...models import Role, Rule
from ..access import current_role, requires
from . import bp
from .common import (
    apply_fix,
    check,
    diagnostic_json,
    find_rule,
    form_source,
    json_source,
    new_and_saved,
    plugins,
    wants_json,
)


def area(rule: Rule | None, text: str, diagnostics: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """What ``admin/rules/_editor_area.html`` needs: the text, its problems (checked now when not given), the URLs."""
    if diagnostics is None:
        diagnostics = [diagnostic_json(d) for d in check(text, rule).diagnostics]
    role = current_role()
    return {
        "text": text,
        "diagnostics": diagnostics,
        "readonly": role is None or not role.allows(Role.EDITOR),
        "urls": urls(rule),
    }


def urls(rule: Rule | None) -> dict[str, str]:
    """Where the editor of *rule* (None: a new rule) sends its text: each endpoint has a form for a new rule
    and one for a saved rule (whose name the text must keep)."""

    def of(endpoint: str) -> str:
        return url_for(f"rules.{endpoint}_rule", rule_id=rule.id) if rule is not None else url_for(f"rules.{endpoint}")

    return {
        "vocabulary": url_for("rules.vocabulary"),
        "format": url_for("rules.format_rule"),
        "validate": of("validate"),
        "fix": of("fix"),
        "try": of("try_it"),
        "save": url_for("rules.save_rule", rule_id=rule.id) if rule is not None else url_for("rules.save"),
    }


def _area(rule: Rule | None, text: str, diagnostics: list[dict[str, Any]] | None = None, status: int = 200):
    return render_template("admin/rules/_editor_area.html", **area(rule, text, diagnostics)), status


@bp.get("/vocabulary")
@requires(Role.VIEWER)
def vocabulary():
    """The names the editor completes: events, fields, tags, templates per channel, segments, channels, steps."""
    return jsonify(editor_words(get_session(), plugins()))


@new_and_saved("/validate", "/<int:rule_id>/validate", "validate")
def validate(rule: Rule | None):
    """The checker's diagnostics for the editor's text (a new rule, or a new version of a saved one)."""
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


@new_and_saved("/fix", "/<int:rule_id>/fix", "fix")
def fix(rule: Rule | None):
    """Apply one fix of a diagnostic (its span and text, as listed) to the posted text; the editor, checked again."""
    text = form_source()
    try:
        line, col, end_line, end_col = (
            int(request.form.get(name, "")) for name in ("line", "col", "end_line", "end_col")
        )
    except ValueError:
        abort(422, description="A fix needs its line, col, end_line and end_col as numbers; check the rule again.")
    fixed = apply_fix(text, line, col, end_line, end_col, request.form.get("insert", ""))
    if fixed is None:
        abort(
            422, description="That fix no longer fits the text (it changed since it was checked); check the rule again."
        )
    return _area(rule, fixed)
