"""The condition compiler: a condition tree → a ``WHERE`` clause over ``contacts`` (see :mod:`server.sqlwhere`)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import (
    Boolean,
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
from sqlalchemy.sql.elements import ColumnElement

from dsl import evaluate as dsl_eval

from ..models import Contact, ContactTag, Event
from .terms import (
    COLUMN_KINDS,
    FIELD_KINDS,
    FLIP,
    IN_PYTHON,
    NAME,
    OPS,
    SQL_TYPES,
    UTC,
    ConstContext,
    SqlForm,
    Term,
    Unsupported,
    apply_op,
    granular,
    is_constant,
    is_false,
    is_number,
    is_unknown,
    iso_utc,
    midnight,
    reads_prop,
    unknown,
)


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
        self._consts = ConstContext(self.now)

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
        if key in OPS:
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
                if not all(NAME.fullmatch(p) for p in parts):
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
        if len(args) != len(params) or function.result not in SQL_TYPES or not set(params) <= set(SQL_TYPES):
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
                return cast(null(), SQL_TYPES[kind])
            return literal(const, SQL_TYPES[kind] if kind != "number" or isinstance(const, float) else None)
        if value.kind != kind and not (value.kind == "json" and kind in SQL_TYPES):
            return cast(null(), SQL_TYPES[kind])  # e.g. a date-looking text: the evaluator sees a date there
        expr = self._typed(value, kind)
        if value.offset is None and value.sign == 1:
            return expr
        if kind != "number" or not is_number(value.offset or 0):
            raise Unsupported("arithmetic inside a function's argument")
        return expr * value.sign + (value.offset or 0)

    def _field(self, name: str) -> Term:
        if name in COLUMN_KINDS:
            return Term(COLUMN_KINDS[name], getattr(Contact, name))
        if name in IN_PYTHON and name not in self.fields:
            raise Unsupported(f"contact.{name} is kept in the fields JSON without a type guard: evaluated in Python")
        kind = FIELD_KINDS.get(self.fields.get(name, ""))
        if kind is None or not NAME.fullmatch(name):
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
            return dsl_eval.arith_values("+", a, b)
        except (OverflowError, TypeError, ValueError):
            raise Unsupported("arithmetic overflow") from None

    @staticmethod
    def _sub(a: Any, b: Any) -> Any:
        try:
            return dsl_eval.arith_values("-", a, b)
        except (OverflowError, TypeError, ValueError):
            raise Unsupported("arithmetic overflow") from None

    # -- comparisons --------------------------------------------------------------------
    def _normalise(self, op: str, a: Any, b: Any) -> tuple[str, Term, Any]:
        """``term OP constant`` with the term's arithmetic moved over to the constant."""
        if isinstance(a, tuple) and isinstance(b, Term):
            op, a, b = FLIP[op], b, a
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
            op, const = FLIP[op], self._sub(a.offset, const)
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
            return apply_op(expr, op, const)
        if kind == "number":
            if not is_number(const):
                return unknown()
            if isinstance(const, float) and not math.isfinite(const):
                raise Unsupported("non-finite number")
            return apply_op(self._typed(term, "number"), op, const)
        if kind == "bool":
            if not isinstance(const, bool):
                return unknown()
            # bound, not inlined: SQLAlchemy orders a Boolean-typed expression (a function's SQL form) only so
            return apply_op(self._typed(term, "bool"), op, literal(const, Boolean()))
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
                const = midnight(const)
            return apply_op(term.expr, op, const)
        expr = self._typed(term, "string")
        if kind == "date":
            if not isinstance(const, dt.datetime):
                return apply_op(expr, op, const.isoformat())
            exact = const.timetz().replace(tzinfo=None) == dt.time(0)
            floor = const.date()
            ceil = floor if exact else floor + dt.timedelta(days=1)
            return granular(expr, op, floor.isoformat(), ceil.isoformat(), exact)
        # dtext: stored to the second as 2026-05-01T12:00:00Z
        if not isinstance(const, dt.datetime):
            const = midnight(const)
        const = const.astimezone(UTC)
        floor = const.replace(microsecond=0)
        exact = floor == const
        ceil = floor if exact else floor + dt.timedelta(seconds=1)
        return granular(expr, op, iso_utc(floor), iso_utc(ceil), exact)

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
            if not is_unknown(test) and not is_false(test):
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
            return apply_op(self._typed(term, "bool"), op, const)
        if is_number(const):
            return apply_op(self._typed(term, "number"), op, const)
        if isinstance(const, str) and dsl_eval.as_temporal(const) is None and op in ("==", "!="):
            return apply_op(self._typed(term, "string"), op, const)
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
