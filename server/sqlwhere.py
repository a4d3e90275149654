"""Condition trees (``dsl``'s JSON form) → a SQLAlchemy ``WHERE`` clause over ``contacts``.

The clause selects exactly the contacts for which ``dsl.holds(tree, context)`` is true, on SQLite
and PostgreSQL, following the evaluator's rules (``dsl/evaluate.py``):

- three-valued logic: a comparison with a missing value is unknown (SQL ``NULL``), ``and``/``or``/
  ``not`` are Kleene's, and a row is selected only when the condition is true;
- values of different kinds compare as unknown; a date meets a date-time as midnight UTC;
- ``now``/``today`` are fixed when the clause is built; arithmetic on a field
  (``contact.renewal - 7d < today``) is moved to the constant side, so indexes still apply;
- custom fields are read from the ``fields`` JSON with a type guard, tags and ``did … within``
  are ``EXISTS``/count subqueries.

A call of a condition function becomes the function's SQL form for the dialect, with the
arguments spliced in (``{0}``, ``{1}`` …) as bound expressions; a function without one is
:class:`Unsupported` (the checker keeps such calls out of segments, see :func:`dsl.parse_condition`).

What it cannot express raises :class:`Unsupported` (``matches``, arithmetic between two fields,
event properties compared with dates …); callers then evaluate in Python instead
(:mod:`server.segments`). ``matches`` stays out of SQL on purpose: SQLite has no ``REGEXP`` and
PostgreSQL's ``~`` backtracks, while the evaluator runs patterns on RE2 in linear time
(:mod:`server.regex`). Values in a string field that look like ISO dates are compared as
strings here, while the engine reads them as dates.
"""

from __future__ import annotations

import datetime as dt
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    String,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    not_,
    null,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement, False_
from sqlalchemy.types import TypeEngine

from dsl import evaluate as dsl_eval

from .models import Contact, ContactTag, Event

UTC = dt.UTC
#: kinds of the contact's own columns
COLUMN_KINDS = {
    "external_id": "string",
    "email": "string",
    "phone": "string",
    "first_name": "string",
    "last_name": "string",
    "timezone": "string",
    "locale": "string",
    "stage": "string",
    "score": "number",
    "created_at": "dcol",
    "updated_at": "dcol",
    "last_seen": "dcol",
}
#: custom field type → kind (``dtext``: a date-time stored as text to the second)
FIELD_KINDS = {
    "string": "string",
    "number": "number",
    "bool": "bool",
    "date": "date",
    "datetime": "dtext",
    "list": "list",
}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_OPS = ("==", "!=", "<", "<=", ">", ">=")
_VALUE_NODES = ("field", "prop", "has_tag", "segment", "did", "call")
#: the SQL type of a condition function's argument or result
_SQL_TYPES: dict[str, TypeEngine[Any]] = {"string": String(), "number": Float(), "bool": Boolean()}
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
        self.type = _SQL_TYPES[kind]


@compiles(SqlForm)
def _compile_form(element: SqlForm, compiler: Any, **kw: Any) -> str:
    parts = [compiler.process(arg, **kw) for arg in element.args]
    return "(" + _PLACEHOLDER.sub(lambda m: f"({parts[int(m.group(1))]})", element.form) + ")"


class _ConstContext:
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


class Compiler:
    """Turns condition trees into clauses for one dialect, one clock and one set of custom fields.

    :param dialect: ``"sqlite"`` or ``"postgresql"``.
    :param now: the evaluation instant (aware).
    :param fields: custom field name → type (``string``, ``number``, ``bool``, ``date``, ``datetime``, ``list``).
    :param segment: name → the segment's condition tree (for ``in segment``), or None when unknown.
    :param functions: condition functions by name (``server.sdk.ConditionFunction``), with their SQL forms.
    """

    def __init__(
        self,
        dialect: str,
        now: dt.datetime,
        fields: Mapping[str, str],
        segment: Callable[[str], Any] | None = None,
        functions: Mapping[str, Any] | None = None,
    ):
        if dialect not in ("sqlite", "postgresql"):
            raise Unsupported(f"no SQL for dialect {dialect!r}")
        self.dialect = dialect
        self.functions = functions or {}
        self.pg = dialect == "postgresql"
        self.now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
        self.fields = dict(fields)
        self.segment = segment
        self._segments_open: list[str] = []
        self._consts = _ConstContext(self.now)

    # -- entry ---------------------------------------------------------------------------
    def where(self, tree: Any) -> ColumnElement[Any]:
        """The clause selecting contacts for which *tree* holds."""
        return self.condition(tree, event=None)

    def condition(self, node: Any, event: Any) -> ColumnElement[Any]:
        if is_constant(node):
            value = self._const(node)
            return true() if value is True else false() if value is False else unknown()
        if isinstance(node, dict) and "did" in node:
            return self._did(node)
        if isinstance(node, dict) and "call" in node:  # a call used as a condition holds when it gives true
            term = self._call(node, event)
            return self._typed(term, "bool") == true() if term.kind == "bool" else unknown()
        if not isinstance(node, dict) or len(node) != 1:
            raise Unsupported(f"not a condition: {node!r}")
        ((key, arg),) = node.items()
        if key == "and":
            return and_(*[self.condition(a, event) for a in arg]) if arg else true()
        if key == "or":
            return or_(*[self.condition(a, event) for a in arg]) if arg else false()
        if key == "not":
            return not_(self.condition(arg, event))
        if key == "has_tag":
            return exists().where(ContactTag.contact_id == Contact.id, ContactTag.tag == arg)
        if key == "segment":
            return self._in_segment(arg)
        if key in _OPS:
            return self._compare(key, self.value(arg[0], event), self.value(arg[1], event))
        if key == "in":
            return self._in(self.value(arg[0], event), self.value(arg[1], event))
        if key == "contains":
            return self._contains(self.value(arg[0], event), self.value(arg[1], event))
        if key in ("starts_with", "ends_with"):
            return self._affix(key, self.value(arg[0], event), self.value(arg[1], event))
        if key == "is_set":
            return self._is_set(self.value(arg, event))
        if key in ("field", "prop"):
            term = self.value(node, event)  # a value used as a condition holds only when it is true
            if term.kind in ("bool", "json"):
                return self._typed(term, "bool") == true()
            return unknown()
        raise Unsupported(f"operator {key!r} has no SQL form")

    # -- values -------------------------------------------------------------------------
    def _const(self, node: Any) -> Any:
        return dsl_eval.evaluate(node, self._consts)

    def value(self, node: Any, event: Any) -> Any:
        """A :class:`Term` for field expressions, else ``("const", value)``."""
        if is_constant(node):
            return ("const", self._const(node))
        if isinstance(node, dict) and "call" in node:
            return self._call(node, event)
        if isinstance(node, dict) and len(node) == 1:
            ((key, arg),) = node.items()
            if key == "field":
                return self._field(arg)
            if key == "prop":
                if event is None:
                    raise Unsupported("event properties outside `did … where`")
                parts = tuple(str(arg).split("."))
                if not all(_NAME.match(p) for p in parts):
                    raise Unsupported(f"event property path {arg!r}")
                return Term("json", None, json=(event, parts))
            if key in ("+", "-"):
                return self._arith(key, self.value(arg[0], event), self.value(arg[1], event))
        raise Unsupported(f"value {node!r} has no SQL form")

    def _call(self, node: Mapping[str, Any], event: Any) -> Term:
        """A call of a condition function through its SQL form, as the evaluator would call it: an argument
        that is missing or of another kind than declared makes the call NULL (the form gives NULL for NULL)."""
        name, args = node["call"], list(node.get("args") or ())
        function = self.functions.get(name)
        form = function.sql.get(self.dialect) if function is not None else None
        if function is None or form is None:
            raise Unsupported(f"`{name}()` has no SQL form for {self.dialect}")
        params = tuple(function.params)
        if len(args) != len(params) or function.result not in _SQL_TYPES or not set(params) <= set(_SQL_TYPES):
            raise Unsupported(f"`{name}()` is not called as its SQL form expects")
        return Term(
            function.result,
            SqlForm(
                form,
                [self._argument(self.value(arg, event), kind) for arg, kind in zip(args, params, strict=True)],
                function.result,
            ),
        )

    def _argument(self, value: Any, kind: str) -> Any:
        """The SQL expression for one argument of declared type *kind*."""
        if isinstance(value, tuple):
            const = dsl_eval.as_kind(value[1], kind) if value[1] is not None else None
            if const is None or const is dsl_eval.MISMATCH:
                return cast(null(), _SQL_TYPES[kind])
            return literal(const, _SQL_TYPES[kind] if kind != "number" or isinstance(const, float) else None)
        if value.kind != kind and not (value.kind == "json" and kind in _SQL_TYPES):
            return cast(null(), _SQL_TYPES[kind])  # e.g. a date-looking text: the evaluator sees a date there
        expr = self._typed(value, kind)
        if value.offset is None and value.sign == 1:
            return expr
        if kind != "number" or not _is_number(value.offset or 0):
            raise Unsupported("arithmetic inside a function's argument")
        return expr * value.sign + (value.offset or 0)

    def _field(self, name: str) -> Term:
        if name in COLUMN_KINDS:
            return Term(COLUMN_KINDS[name], getattr(Contact, name))
        kind = FIELD_KINDS.get(self.fields.get(name, ""))
        if kind is None or not _NAME.match(name):
            raise Unsupported(f"unknown contact field {name!r}")
        return Term(kind, None, json=(Contact.fields, (name,)))

    def _arith(self, op: str, a: Any, b: Any) -> Term:
        if isinstance(a, Term) and isinstance(b, Term):
            raise Unsupported("arithmetic between two fields")
        if isinstance(a, Term):
            term, const = a, b[1]
            offset = const if op == "+" else self._negate(const)
            return Term(term.kind, term.expr, term.sign, self._add(term.offset, offset), term.json)
        term, const = b, a[1]
        if op == "+":
            return Term(term.kind, term.expr, term.sign, self._add(term.offset, const), term.json)
        # const - (sign*x + offset) = -sign*x + (const - offset)
        offset = const if term.offset is None else self._sub(const, term.offset)
        return Term(term.kind, term.expr, -term.sign, offset, term.json)

    @staticmethod
    def _negate(value: Any) -> Any:
        if isinstance(value, (int, float, dt.timedelta)) and not isinstance(value, bool):
            return -value
        raise Unsupported("only numbers and durations can be subtracted from a field")

    def _add(self, a: Any, b: Any) -> Any:
        if a is None:
            return b
        try:
            return dsl_eval._arith_values("+", a, b)
        except (OverflowError, TypeError, ValueError):
            raise Unsupported("arithmetic overflow") from None

    @staticmethod
    def _sub(a: Any, b: Any) -> Any:
        try:
            return dsl_eval._arith_values("-", a, b)
        except (OverflowError, TypeError, ValueError):
            raise Unsupported("arithmetic overflow") from None

    # -- comparisons --------------------------------------------------------------------
    def _normalise(self, op: str, a: Any, b: Any) -> tuple[str, Term, Any]:
        """``term OP constant`` with the term's arithmetic moved over to the constant."""
        if isinstance(a, tuple) and isinstance(b, Term):
            op, a, b = _FLIP[op], b, a
        if isinstance(b, Term):
            raise Unsupported("comparison between two fields")
        const = b[1]
        if const is None:
            return op, a, None
        if a.sign == 1:
            if a.offset is not None:
                const = self._sub(const, a.offset)
        else:  # -x + offset OP const  <=>  x FLIP(OP) offset - const
            if a.offset is None:
                raise Unsupported("negated field")
            op, const = _FLIP[op], self._sub(a.offset, const)
        if const is None:
            return op, a, None
        if a.offset is not None and a.kind in ("string", "bool", "list"):
            raise Unsupported("arithmetic on a non-numeric, non-date field")
        return op, a, const

    def _compare(self, op: str, a: Any, b: Any) -> ColumnElement[Any]:
        op, term, const = self._normalise(op, a, b)  # constant-only comparisons were folded already
        if const is None:
            return unknown()
        return self._term_op(term, op, const)

    def _term_op(self, term: Term, op: str, const: Any) -> ColumnElement[Any]:
        kind = term.kind
        if kind == "json":
            return self._json_op(term, op, const)
        if isinstance(const, str) and kind in ("date", "dtext", "dcol"):
            parsed = dsl_eval.as_temporal(const)
            if parsed is None:
                return unknown()
            const = parsed
        if kind == "string":
            if isinstance(const, (dt.date, dt.timedelta)):
                raise Unsupported("a string field compared with a date")
            if not isinstance(const, str):
                return unknown()
            expr = self._typed(term, "string")
            if self.pg and op not in ("==", "!="):
                expr, const = expr.collate("C"), literal(const, String).collate("C")
            return _op(expr, op, const)
        if kind == "number":
            if not _is_number(const):
                return unknown()
            if isinstance(const, float) and not math.isfinite(const):
                raise Unsupported("non-finite number")
            return _op(self._typed(term, "number"), op, const)
        if kind == "bool":
            if not isinstance(const, bool):
                return unknown()
            # bound, not inlined: SQLAlchemy orders a Boolean-typed expression (a function's SQL form) only so
            return _op(self._typed(term, "bool"), op, literal(const, Boolean()))
        if kind == "list":
            return unknown()
        if kind in ("date", "dtext", "dcol"):
            if isinstance(const, dt.datetime):
                const = const if const.tzinfo else const.replace(tzinfo=UTC)
            elif not isinstance(const, dt.date) or isinstance(const, bool):
                return unknown()
            return self._temporal(term, kind, op, const)
        raise Unsupported(f"kind {kind}")

    def _temporal(self, term: Term, kind: str, op: str, const: dt.date | dt.datetime) -> ColumnElement[Any]:
        if kind == "dcol":
            if not isinstance(const, dt.datetime):
                const = _midnight(const)
            return _op(term.expr, op, const)
        expr = self._typed(term, "string")
        if kind == "date":
            if not isinstance(const, dt.datetime):
                return _op(expr, op, const.isoformat())
            exact = const.timetz().replace(tzinfo=None) == dt.time(0)
            floor = const.date()
            ceil = floor if exact else floor + dt.timedelta(days=1)
            return _granular(expr, op, floor.isoformat(), ceil.isoformat(), exact)
        # dtext: stored to the second as 2026-05-01T12:00:00Z
        if not isinstance(const, dt.datetime):
            const = _midnight(const)
        const = const.astimezone(UTC)
        floor = const.replace(microsecond=0)
        exact = floor == const
        ceil = floor if exact else floor + dt.timedelta(seconds=1)
        return _granular(expr, op, _iso(floor), _iso(ceil), exact)

    def _in(self, a: Any, b: Any) -> ColumnElement[Any]:
        if not isinstance(a, Term) or not isinstance(b, tuple):
            raise Unsupported("`in` needs a field on the left and a list on the right")
        items = b[1]
        if not isinstance(items, list):
            return unknown()
        tests = []
        for item in items:
            if item is None:
                continue
            test = self._compare("==", a, ("const", item))
            if not _is_unknown(test) and not _is_false(test):
                tests.append(test)
        # the evaluator: unknown when the value is missing, else whether any item matched
        matched = func.coalesce(or_(*tests), false()) if tests else false()
        return case((self._is_set(a), matched))

    def _contains(self, a: Any, b: Any) -> ColumnElement[Any]:
        if not isinstance(a, Term) or not isinstance(b, tuple) or a.offset is not None:
            raise Unsupported("`contains` needs a field on the left and a value on the right")
        part = b[1]
        if part is None:
            return unknown()
        if a.kind == "string":
            if not isinstance(part, str):
                return unknown()
            expr = self._typed(a, "string")
            found = func.strpos(expr, part) > 0 if self.pg else func.instr(expr, part) > 0
            return found
        if a.kind == "list":
            if not isinstance(part, str):
                raise Unsupported("a list field tested for a non-string")
            return self._list_contains(a, part)
        if a.kind == "json":
            raise Unsupported("`contains` on an event property")
        return unknown()

    def _affix(self, key: str, a: Any, b: Any) -> ColumnElement[Any]:
        if not isinstance(a, Term) or not isinstance(b, tuple) or a.offset is not None or a.kind == "json":
            raise Unsupported(f"`{key}` needs a text field on the left and a text on the right")
        part = b[1]
        if a.kind != "string" or not isinstance(part, str):
            return unknown()
        expr = self._typed(a, "string")
        n = len(part)
        if n == 0:
            return expr == expr
        if key == "starts_with":
            return func.substr(expr, 1, n) == part
        return and_(func.length(expr) >= n, func.substr(expr, func.length(expr) - n + 1, n) == part)

    def _is_set(self, a: Any) -> ColumnElement[Any]:
        if isinstance(a, tuple):
            return true() if a[1] is not None else false()
        if a.offset is not None:
            raise Unsupported("`is set` on arithmetic")
        if a.json is None:
            return a.expr.isnot(None)
        return self._json_present(a)

    # -- JSON access ----------------------------------------------------------------------
    @staticmethod
    def _json_of(term: Term) -> tuple[Any, tuple[str, ...]]:
        """The (JSON column, path) of an event property term."""
        if term.json is None:
            raise Unsupported(f"a {term.kind} value used as an event property")
        return term.json

    def _json_type(self, term: Term) -> Any:
        column, path = self._json_of(term)
        if self.pg:
            return func.jsonb_typeof(column[path] if len(path) > 1 else column[path[0]])
        return func.json_type(column, "$." + ".".join(path))

    def _json_present(self, term: Term) -> ColumnElement[Any]:
        kind = self._json_type(term)
        return and_(kind.isnot(None), kind != "null")

    def _typed(self, term: Term, want: str) -> Any:
        """The term's value when it has the wanted JSON type, else NULL (columns pass through)."""
        if term.json is None:
            return term.expr
        column, path = term.json
        kind = self._json_type(term)
        if self.pg:
            elem = column[path] if len(path) > 1 else column[path[0]]
            if want == "string":
                return case((kind == "string", elem.as_string()))
            if want == "number":
                return case((kind == "number", elem.as_float()))
            return case((kind == "boolean", elem.as_boolean()))
        raw = func.json_extract(column, "$." + ".".join(path))
        if want == "string":
            return case((kind == "text", raw))
        if want == "number":
            return case((kind.in_(("integer", "real")), raw))
        return case((kind == "true", true()), (kind == "false", false()))

    def _json_op(self, term: Term, op: str, const: Any) -> ColumnElement[Any]:
        if term.offset is not None:
            raise Unsupported("arithmetic on an event property")
        if isinstance(const, bool):
            return _op(self._typed(term, "bool"), op, const)
        if _is_number(const):
            return _op(self._typed(term, "number"), op, const)
        if isinstance(const, str) and dsl_eval.as_temporal(const) is None and op in ("==", "!="):
            return _op(self._typed(term, "string"), op, const)
        raise Unsupported("event property compared with this value")

    def _list_contains(self, term: Term, part: str) -> ColumnElement[Any]:
        column, path = self._json_of(term)
        kind = self._json_type(term)
        if self.pg:
            elem = column[path[0]]
            return case((kind == "array", elem.bool_op("?")(part)))
        each = func.json_each(column, "$." + path[0]).table_valued("value", "type")
        found = exists(select(literal(1)).select_from(each).where(each.c.type == "text", each.c.value == part))
        return case((kind == "array", found))

    # -- did, segments --------------------------------------------------------------------
    def _did(self, node: Mapping[str, Any]) -> ColumnElement[Any]:
        try:
            since = self.now - dt.timedelta(seconds=node.get("within", 0))
        except OverflowError:
            since = dt.datetime(1, 1, 1, tzinfo=UTC)
        tests = [
            Event.contact_id == Contact.id,
            Event.name == node["did"],
            Event.occurred_at >= since,
            Event.occurred_at <= self.now,
        ]
        if node.get("where") is not None:
            tests.append(self.condition(node["where"], event=Event.props))
        if not reads_prop(node.get("where"), "machine"):  # a proxy's open or a scanner's click is not the person's
            machine = self.value({"prop": "machine"}, Event.props)
            tests.append(or_(not_(self._is_set(machine)), not_(self._typed(machine, "bool") == true())))
        at_least = int(node.get("at_least") or 1)
        if at_least <= 1:
            return exists().where(*tests)
        return select(func.count(Event.id)).where(*tests).scalar_subquery() >= at_least

    def _in_segment(self, name: str) -> ColumnElement[Any]:
        if self.segment is None:
            raise Unsupported("segments are not available here")
        if name in self._segments_open:
            raise Unsupported(f"segment {name!r} refers to itself")
        tree = self.segment(name)
        if tree is None:
            return false()  # the evaluator's in_segment is False for an unknown segment
        self._segments_open.append(name)
        try:
            return self.where(tree)
        finally:
            self._segments_open.pop()


#: the comparison operators, applied only when asked (SQLAlchemy refuses ``<`` against True, say)
_OPERATORS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _op(expr: Any, op: str, value: Any) -> ColumnElement[Any]:
    return _OPERATORS[op](expr, value)


def _granular(expr: Any, op: str, floor: str, ceil: str, exact: bool) -> ColumnElement[Any]:
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


def _midnight(value: dt.date) -> dt.datetime:
    return dt.datetime(value.year, value.month, value.day, tzinfo=UTC)


def _iso(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_unknown(clause: Any) -> bool:
    return str(clause) == str(unknown())


def _is_false(clause: Any) -> bool:
    return isinstance(clause, False_)


def where(
    tree: Any,
    *,
    dialect: str,
    now: dt.datetime,
    fields: Mapping[str, str],
    segment: Callable[[str], Any] | None = None,
    functions: Mapping[str, Any] | None = None,
) -> ColumnElement[Any]:
    """The ``WHERE`` clause over :class:`~server.models.Contact` for *tree*; see :class:`Compiler`.

    :raises Unsupported: when part of the tree has no SQL form here.
    """
    return Compiler(dialect, now, fields, segment, functions).where(tree)


__all__ = ["Compiler", "Unsupported", "unknown", "where"]
