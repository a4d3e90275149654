"""Condition functions from plugins: their declarations checked, and the set an app has.

A plugin declares each function as a :class:`server.sdk.ConditionFunction` (name, parameter and
result types, a Python implementation, optionally SQL forms). The plugin manager checks every
declaration here when it loads the plugin; the rules checker gets the declarations as vocabulary,
the evaluator calls the implementations (:mod:`server.engine.scope`), and :mod:`server.sqlwhere`
splices the SQL forms into segment queries.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import dsl

#: the databases a function may give an SQL form for
DIALECTS = ("sqlite", "postgresql")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLACEHOLDER = re.compile(r"\{(\d+)\}")


def problem(function: Any) -> str | None:
    """What is wrong with a declaration a plugin returned, or None when it can be used.

    :param function: an item of ``register_condition_functions``'s answer.
    """
    from .sdk import ConditionFunction

    if not isinstance(function, ConditionFunction):
        shown = f"a plain function for {function[0]!r}" if isinstance(function, tuple) else repr(function)[:80]
        return (
            f"returned {shown}, not a server.sdk.ConditionFunction; declare the parameter and result types "
            "so rules can be checked: ConditionFunction(name, params, result, implementation)"
        )
    name = function.name
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        return f"condition function name {name!r} is not a name (letters, digits and _)"
    if name in dsl.RESERVED_FUNCTION_NAMES:
        return f"condition function name {name!r} is a keyword of the rules language; choose another name"
    types = ", ".join(sorted(dsl.VALUE_TYPES))
    if not isinstance(function.params, tuple) or any(p not in dsl.VALUE_TYPES for p in function.params):
        return f"{name}(): params must be a tuple of types ({types}), not {function.params!r}"
    if function.result not in dsl.VALUE_TYPES:
        return f"{name}(): result must be one of {types}, not {function.result!r}"
    if not callable(function.implementation):
        return f"{name}(): implementation {function.implementation!r} is not callable"
    return _sql_problem(function)


def _sql_problem(function: Any) -> str | None:
    name, sql = function.name, function.sql
    if not isinstance(sql, Mapping):
        return f"{name}(): sql must map a database ({', '.join(DIALECTS)}) to an SQL expression"
    if not sql:
        return None
    if function.result not in dsl.SQL_TYPES or any(p not in dsl.SQL_TYPES for p in function.params):
        return f"{name}(): an SQL form takes and gives only strings, numbers and true/false"
    for dialect, form in sql.items():
        if dialect not in DIALECTS:
            return f"{name}(): no database called {dialect!r}; SQL forms are for {', '.join(DIALECTS)}"
        if not isinstance(form, str) or not form.strip():
            return f"{name}(): the {dialect} SQL form must be an SQL expression, not {form!r}"
        used = {int(index) for index in _PLACEHOLDER.findall(form)}
        if any(index >= len(function.params) for index in used):
            return (
                f"{name}(): the {dialect} SQL form uses {{{max(used)}}}, but the function takes "
                f"{len(function.params)} argument(s) ({{0}} is the first)"
            )
    return None


def installed(app: Any = None) -> Mapping[str, Any]:
    """The condition functions of *app* (default: the current app) by name; none outside an app context."""
    from flask import current_app, has_app_context

    if app is None and has_app_context():
        app = current_app
    if app is None:
        return {}
    return app.extensions["nudge.plugins"].condition_functions


__all__ = ["DIALECTS", "installed", "problem"]
