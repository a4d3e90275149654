"""Helpers the rules pages share: finding a rule, reading the editor's text, diagnostics as the editor wants them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from flask import Response, abort, current_app, json, request

from ...db import get_session
from ...engine.editing import MAX_TEXT, RuleCheck, check_rule_text
from ...models import Role, Rule
from ...sdk import JsonInputError, parse_json
from ..access import current_user, requires
from . import bp

#: origins that are not a file of ``nudge apply``
NOT_FILES = frozenset({"api", "editor"})


def refuse(status: int, description: str) -> NoReturn:
    """Stop with *status*: for the editor bundle's JSON, ``application/problem+json`` with the *description* as
    ``detail``; for a page or htmx, the admin error page or the flash area."""
    if wants_json():
        body = {
            "title": {400: "Bad request", 404: "Not found", 413: "Too large"}.get(status, "Invalid input"),
            "status": status,
            "detail": description,
        }
        abort(Response(json.dumps(body), status, mimetype="application/problem+json"))
    abort(status, description=description)


def new_and_saved(new: str, saved: str, endpoint: str) -> Callable[[Callable[[Rule | None], Any]], Any]:
    """Serve ``view(rule)`` for editors by POST at *new* (endpoint *endpoint*, ``rule`` None: the text is a new
    rule) and at *saved* (``/<int:rule_id>…``, endpoint ``<endpoint>_rule``: the text is a new version of it)."""

    def decorator(view: Callable[[Rule | None], Any]) -> Callable[[Rule | None], Any]:
        def for_new() -> Any:
            return view(None)

        def for_saved(rule_id: int) -> Any:
            return view(find_rule(rule_id))

        for function, path, name in ((for_new, new, endpoint), (for_saved, saved, f"{endpoint}_rule")):
            function.__doc__ = view.__doc__
            bp.add_url_rule(path, name, requires(Role.EDITOR)(function), methods=["POST"])
        return view

    return decorator


def plugins() -> Any:
    return current_app.extensions["nudge.plugins"]


MAX_ID = 2**31 - 1  # the largest id a row has: a larger one in the URL is no row (and no database takes it)


def find_rule(rule_id: int | None) -> Rule | None:
    """The rule *rule_id* (None for a new rule); a 404 naming it when there is none."""
    if rule_id is None:
        return None
    rule = get_session().get(Rule, rule_id) if 0 < rule_id <= MAX_ID else None
    if rule is None:
        refuse(404, f"There is no rule with id {rule_id}; it may have been removed. Open the rules list to find it.")
    return rule


def applied_from(rule: Rule | None) -> str | None:
    """The file ``nudge apply`` read the rule from, when it came from one (its git copy)."""
    if rule is None or not rule.origin or rule.origin in NOT_FILES:
        return None
    return rule.origin


def email() -> str:
    """Who saves a version from the editor: the signed-in person's email."""
    user = current_user()
    assert user is not None  # requires() signed them in
    return user.email


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        refuse(422, f"{where} must be the rule's text (a string).")
    if len(value) > MAX_TEXT:
        refuse(413, f"The rule is {len(value):,} characters long; the editor takes at most {MAX_TEXT:,}.")
    if "\x00" in value:
        refuse(422, "The rule's text holds a NUL character; remove it.")
    return value.replace("\r\n", "\n")


def form_source() -> str:
    """The editor's text from a form post (field ``source``), with Windows line ends made plain."""
    return _text(request.form.get("source", ""), "source")


def json_source() -> str:
    """``source`` of the editor bundle's JSON body ``{"source": "<text>"}``.

    :raises werkzeug.exceptions.HTTPException: 400 when the body is not JSON, 422 when it has no text.
    """
    try:
        body = parse_json(request.get_data(cache=True))
    except JsonInputError as exc:
        refuse(400 if exc.malformed else 422, f'The body must be JSON {{"source": "…"}}: {exc.message}')
    if not isinstance(body, dict) or "source" not in body:
        refuse(422, 'The body must be JSON {"source": "<the rule\'s text>"}.')
    return _text(body["source"], "source")


def wants_json() -> bool:
    return request.mimetype == "application/json"


def check(text: str, rule: Rule | None) -> RuleCheck:
    """The editor's text checked against this instance, as a new rule or a new version of *rule*."""
    return check_rule_text(get_session(), plugins(), text, rule)


def fix_label(replacement: str) -> str:
    shown = replacement[1:-1] if len(replacement) > 1 and replacement[0] == replacement[-1] == '"' else replacement
    return f'Replace with "{shown}"'


def diagnostic_json(diagnostic: Any) -> dict[str, Any]:
    """One diagnostic as the editor contract has it (1-based line and column; end column exclusive)."""
    fixes = []
    if diagnostic.replacement is not None and diagnostic.end_col is not None:
        fixes.append(
            {
                "label": fix_label(diagnostic.replacement),
                "line": diagnostic.line,
                "col": diagnostic.col,
                "end_line": diagnostic.line,
                "end_col": diagnostic.end_col,
                "insert": diagnostic.replacement,
            }
        )
    return {
        "severity": diagnostic.severity,
        "line": diagnostic.line,
        "col": diagnostic.col,
        "end_line": diagnostic.line if diagnostic.end_col is not None else None,
        "end_col": diagnostic.end_col,
        "message": diagnostic.message,
        "hint": diagnostic.hint,
        "fixes": fixes,
    }


def apply_fix(text: str, line: int, col: int, end_line: int, end_col: int, insert: str) -> str | None:
    """*text* with the span (1-based, end exclusive) replaced by *insert*; None when the span is not in the text."""
    lines = text.split("\n")
    if not (1 <= line <= end_line <= len(lines)) or col < 1 or end_col < 1:
        return None
    if col - 1 > len(lines[line - 1]) or end_col - 1 > len(lines[end_line - 1]) or (line == end_line and end_col < col):
        return None
    head, tail = lines[line - 1][: col - 1], lines[end_line - 1][end_col - 1 :]
    return "\n".join([*lines[: line - 1], head + insert + tail, *lines[end_line:]])


__all__ = [
    "MAX_ID",
    "applied_from",
    "apply_fix",
    "check",
    "diagnostic_json",
    "email",
    "find_rule",
    "fix_label",
    "form_source",
    "json_source",
    "new_and_saved",
    "plugins",
    "refuse",
    "wants_json",
]
