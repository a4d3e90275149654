"""The parts the condition compiler builds with: kinds, terms, condition functions' SQL forms, operators."""

from __future__ import annotations

import datetime as dt
import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    String,
    cast,
    null,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement, False_
from sqlalchemy.types import TypeEngine

from dsl import BUILTIN_CONTACT_FIELDS

from ..models.contacts import BUILTIN_COLUMNS

UTC = dt.UTC
#: custom field type → kind (``dtext``: a date-time stored as text to the second)
FIELD_KINDS = {
    "string": "string",
    "number": "number",
    "bool": "bool",
    "date": "date",
    "datetime": "dtext",
    "list": "list",
}
#: kinds of the built-in contact fields kept in the contact's own columns (a date-time column is ``dcol``)
COLUMN_KINDS = {
    name: "dcol" if type_ == "datetime" else type_
    for name, type_ in BUILTIN_CONTACT_FIELDS.items()
    if name in BUILTIN_COLUMNS
}
#: the built-in contact fields kept in the ``fields`` JSON (``birthday``): they have no SQL (unless a custom field of
#: that name redefines them) and are evaluated in Python, since a rule may store a value of another shape in one
#: (``set contact.birthday = now`` stores a date-time), which the evaluator reads by its shape and SQL by the type
IN_PYTHON = frozenset(BUILTIN_CONTACT_FIELDS) - BUILTIN_COLUMNS
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # matched whole (fullmatch): `$` would let a trailing newline in
FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
OPS = ("==", "!=", "<", "<=", ">", ">=")
_VALUE_NODES = ("field", "prop", "has_tag", "segment", "did", "call")
#: the SQL type of a condition function's argument or result
SQL_TYPES: dict[str, TypeEngine[Any]] = {"string": String(), "number": Float(), "bool": Boolean()}
_PLACEHOLDER = re.compile(r"\{(\d+)\}")


class Unsupported(ValueError):
    """The condition uses something this compiler does not turn into SQL."""


def unknown() -> ColumnElement[Any]:
    """SQL's unknown as a boolean (``CAST(NULL AS BOOLEAN)``)."""
    return cast(null(), Boolean)


@dataclass(frozen=True)
class Term:
    """``sign * expr + offset``: a field (or event property) with constant arithmetic pending."""

    kind: str
    expr: Any
    sign: int = 1
    offset: Any = None
    json: tuple[Any, tuple[str, ...]] | None = None  # (JSON column, path) for event properties


class SqlForm(ColumnElement[Any]):
    """A plugin's SQL form of a condition function, its ``{0}``, ``{1}`` … bound to argument expressions."""

    inherit_cache = False  # the form's text is not part of SQLAlchemy's cache key: never cache it

    def __init__(self, form: str, args: list[Any], kind: str):
        self.form = form
        self.args = args
        self.type = SQL_TYPES[kind]


@compiles(SqlForm)
def _compile_form(element: SqlForm, compiler: Any, **kw: Any) -> str:
    parts = [compiler.process(arg, **kw) for arg in element.args]
    return "(" + _PLACEHOLDER.sub(lambda m: f"({parts[int(m.group(1))]})", element.form) + ")"


class ConstContext:
    """Evaluates constant subtrees with the evaluator itself, so folding agrees with it."""

    def __init__(self, now: dt.datetime):
        self.now = now

    # constant subtrees read no fields, tags, events, segments or functions: none of these is ever called
    def contact_field(self, name: str) -> Any:  # pragma: no cover
        raise Unsupported("not a constant")

    def has_tag(self, tag: str) -> bool:  # pragma: no cover
        raise Unsupported("not a constant")

    def event_prop(self, path: str) -> Any:  # pragma: no cover
        raise Unsupported("not a constant")

    def count_events(self, name: str, where: Any, since: dt.datetime) -> int:  # pragma: no cover
        raise Unsupported("not a constant")

    def in_segment(self, name: str) -> bool:  # pragma: no cover
        raise Unsupported("not a constant")

    def function(self, name: str) -> Any:  # pragma: no cover
        raise Unsupported("not a constant")

    def function_failed(self, name: str, problem: str) -> None:  # pragma: no cover
        raise Unsupported("not a constant")


def reads_prop(tree: Any, name: str) -> bool:
    """Whether a condition *tree* (docs/plan.md) reads the event property *name* (``event.machine``)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            if node.get("prop") == name:
                return True
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
    return False


def is_constant(node: Any) -> bool:
    if isinstance(node, list):
        return all(is_constant(n) for n in node)
    if isinstance(node, dict):
        if any(k in node for k in _VALUE_NODES):
            return False
        return all(is_constant(v) for v in node.values())
    return True


#: the comparison operators, applied only when asked (SQLAlchemy refuses ``<`` against True, say)
_OPERATORS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def apply_op(expr: Any, op: str, value: Any) -> ColumnElement[Any]:
    return _OPERATORS[op](expr, value)


def granular(expr: Any, op: str, floor: str, ceil: str, exact: bool) -> ColumnElement[Any]:
    """``value OP x`` for a value stored at a coarser grain than x (a date vs a date-time, seconds vs
    microseconds): *floor*/*ceil* are x rounded down/up to the grain, *exact* whether x is on it."""
    if op == "<":
        return expr < ceil
    if op == "<=":
        return expr <= floor
    if op == ">":
        return expr > floor
    if op == ">=":
        return expr >= ceil
    if op == "==":
        return expr == floor if exact else expr != expr
    return expr != floor if exact else expr == expr


def midnight(value: dt.date) -> dt.datetime:
    return dt.datetime(value.year, value.month, value.day, tzinfo=UTC)


def iso_utc(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_unknown(clause: Any) -> bool:
    return str(clause) == str(unknown())


def is_false(clause: Any) -> bool:
    return isinstance(clause, False_)
