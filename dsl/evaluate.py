"""Evaluate condition trees (docs/plan.md) in pure Python.

The engine supplies an :class:`EvalContext`. Semantics follow SQL so that a
``WHERE`` clause compiled from the same tree agrees:

- a missing value (None) makes a comparison *unknown*, not false:
  ``contact.x == "a"`` and ``contact.x != "a"`` are both unknown when x is unset;
- ``and``/``or``/``not`` are three-valued (Kleene): ``not unknown`` is unknown;
- a condition *holds* only when it is true (:func:`holds`);
- ``is set`` / ``is not set``, ``has tag``, ``in segment`` and ``did`` are never unknown;
- values of different kinds (a number and a string) compare as unknown; a
  date compares with a date-time as midnight UTC of that day; strings shaped
  like ISO dates are dates when compared with, or added to, dates;
- ``now`` is ``context.now`` in UTC, ``today`` its date;
- ``matches`` searches with a pattern refused if it could take exponential time
  (see :mod:`dsl.safe_regex`), on the first 10,000 characters;
- a call of a condition function runs the implementation the context supplies
  (:meth:`EvalContext.function`) on the argument values, each brought to its declared
  type (a date-time to a ``date`` parameter is its UTC day; a date to a ``datetime`` one
  is its midnight UTC). A missing argument, or one of another kind, makes the call
  unknown without running it (as SQL functions give NULL for NULL). A call that cannot
  run — no implementation, an exception inside it, a result of another type than
  declared — is unknown too, so the condition does not hold through it, and the context
  hears why (:meth:`EvalContext.function_failed`). ``None`` as a result is a missing value.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from collections.abc import Callable
from typing import Any, Protocol

from . import safe_regex

UTC = dt.UTC
#: an operator's implementation: its argument(s) in the tree and the context give its value
Handler = Callable[[Any, "EvalContext"], Any]


class EvalContext(Protocol):
    """What the engine provides to evaluate a condition for one contact (and event)."""

    now: dt.datetime

    def contact_field(self, name: str) -> Any:
        """The contact's value for ``name``, or None when unset."""

    def has_tag(self, tag: str) -> bool:
        """Whether the contact has ``tag``."""

    def event_prop(self, path: str) -> Any:
        """The trigger event's property at dotted ``path``, or None."""

    def count_events(self, name: str, where: Any, since: dt.datetime) -> int:
        """How many ``name`` events the contact has had since ``since`` that satisfy ``where``
        (a condition tree in which ``{"prop": …}`` refers to the counted event; None = all)."""

    def in_segment(self, name: str) -> bool:
        """Whether the contact is in segment ``name``."""

    def function(self, name: str) -> Any:
        """The condition function ``name`` (a :class:`dsl.vocabulary.Function`), or None when none is installed.

        Optional: a context without it has no functions."""

    def function_failed(self, name: str, problem: str) -> None:
        """A call of ``name`` could not run (``problem`` says why); its value is unknown.

        Optional: a context without it is not told."""


def holds(condition: Any, context: EvalContext) -> bool:
    """True only when ``condition`` is definitely true (unknown counts as not holding)."""
    return truth(condition, context) is True


def truth(condition: Any, context: EvalContext) -> bool | None:
    """Three-valued truth of a condition: True, False or None (unknown)."""
    value = evaluate(condition, context)
    return value if isinstance(value, bool) else None


def evaluate(node: Any, context: EvalContext) -> Any:
    """The value of a tree node: a literal, a field, or the result of an operator."""
    if node is None or isinstance(node, (str, bool, int, float)):
        return node
    if isinstance(node, list):
        return [evaluate(item, context) for item in node]
    if not isinstance(node, dict) or not node:
        raise ValueError(f"not a condition tree node: {node!r}")
    if "did" in node:
        return _did(node, context)
    if "call" in node:
        return _call(node, context)
    ((key, arg),) = node.items()
    handler = _HANDLERS.get(key)
    if handler is None:
        raise ValueError(f"unknown operator {key!r} in condition tree")
    return handler(arg, context)


# ---- values ---------------------------------------------------------------------


def _now(context: EvalContext) -> dt.datetime:
    now = context.now
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _duration(seconds: Any, context: EvalContext) -> dt.timedelta | None:
    try:
        return dt.timedelta(seconds=seconds)
    except OverflowError:
        return None


def _date(text: Any, context: EvalContext) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
    except (TypeError, ValueError):
        return None


def _time(text: Any, context: EvalContext) -> dt.time | None:
    try:
        return dt.time.fromisoformat(text)
    except (TypeError, ValueError):
        return None


def as_temporal(value: Any) -> dt.date | dt.datetime | None:
    """A date or an aware date-time from a value, parsing ISO strings; None if it is neither."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and 10 <= len(value) <= 40 and value[:4].isdigit():
        text = value.replace("Z", "+00:00") if value.endswith("Z") else value
        try:
            if len(value) == 10:
                return dt.date.fromisoformat(value)
            return as_temporal(dt.datetime.fromisoformat(text))
        except ValueError:
            return None
    return None


def _midnight(value: dt.date | dt.datetime) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime(value.year, value.month, value.day, tzinfo=UTC)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _align(a: Any, b: Any) -> tuple[Any, Any] | None:
    """Bring two values to one comparable kind, or None when they are of different kinds."""
    if _is_number(a) and _is_number(b):
        return a, b
    if isinstance(a, bool) or isinstance(b, bool):
        return (a, b) if isinstance(a, bool) and isinstance(b, bool) else None
    temporal = (dt.date, dt.datetime)
    if isinstance(a, temporal) or isinstance(b, temporal):
        a2, b2 = as_temporal(a), as_temporal(b)
        if a2 is None or b2 is None:
            return None
        if type(a2) is not type(b2):
            return _midnight(a2), _midnight(b2)
        return a2, b2
    if type(a) is type(b) and isinstance(a, (str, dt.timedelta, dt.time)):
        return a, b
    return None


# ---- operators ------------------------------------------------------------------


def _binary(compare: Callable[[Any, Any], bool]) -> Handler:
    def handler(args: Any, context: EvalContext) -> bool | None:
        a, b = (evaluate(arg, context) for arg in args)
        if a is None or b is None:
            return None
        pair = _align(a, b)
        if pair is None:
            return None
        try:
            return compare(*pair)
        except TypeError:
            return None

    return handler


def _in(args: Any, context: EvalContext) -> bool | None:
    value, items = (evaluate(arg, context) for arg in args)
    if value is None or not isinstance(items, list):
        return None
    for item in items:
        pair = _align(value, item) if item is not None else None
        if pair is not None and pair[0] == pair[1]:
            return True
    return False


def _contains(args: Any, context: EvalContext) -> bool | None:
    whole, part = (evaluate(arg, context) for arg in args)
    if whole is None or part is None:
        return None
    if isinstance(whole, str):
        return part in whole if isinstance(part, str) else None
    if isinstance(whole, list):
        return _in([part, whole], context)
    return None


def _strings(test: Callable[[str, str], bool]) -> Handler:
    def handler(args: Any, context: EvalContext) -> bool | None:
        a, b = (evaluate(arg, context) for arg in args)
        if not (isinstance(a, str) and isinstance(b, str)):
            return None
        return test(a, b)

    return handler


def _matches(args: Any, context: EvalContext) -> bool | None:
    subject = evaluate(args[0], context)
    if not isinstance(subject, str):
        return None
    return safe_regex.search(args[1], subject)


def _is_set(arg: Any, context: EvalContext) -> bool:
    return evaluate(arg, context) is not None


def _arith(op: str) -> Handler:
    def handler(args: Any, context: EvalContext) -> Any:
        a, b = (evaluate(arg, context) for arg in args)
        if a is None or b is None:
            return None
        try:
            return arith_values(op, a, b)
        except (OverflowError, TypeError, ValueError):
            return None

    return handler


def arith_values(op: str, a: Any, b: Any) -> Any:
    """``a op b`` for numbers, durations and dates (see the module docstring); None if it makes no sense."""
    sign = 1 if op == "+" else -1
    if _is_number(a) and _is_number(b):
        return a + sign * b
    if isinstance(a, dt.timedelta) and isinstance(b, dt.timedelta):
        return a + sign * b
    if op == "+" and isinstance(a, dt.timedelta):
        a, b = b, a
    if isinstance(b, dt.timedelta):
        base = as_temporal(a)
        if base is None:
            return None
        whole_days = b.seconds == 0 and b.microseconds == 0
        if not isinstance(base, dt.datetime) and not whole_days:
            base = _midnight(base)
        return base + sign * b
    if op == "-":
        left, right = as_temporal(a), as_temporal(b)
        if left is None or right is None:
            return None
        if type(left) is not type(right):
            left, right = _midnight(left), _midnight(right)
        return left - right
    return None


def _junction(decisive: bool) -> Handler:
    """``and`` (decided by a False) or ``or`` (decided by a True), three-valued."""

    def handler(args: Any, context: EvalContext) -> bool | None:
        unknown = False
        for arg in args:
            value = truth(arg, context)
            if value is decisive:
                return decisive
            unknown = unknown or value is None
        return None if unknown else not decisive

    return handler


def _not(arg: Any, context: EvalContext) -> bool | None:
    value = truth(arg, context)
    return None if value is None else not value


def _did(node: Any, context: EvalContext) -> bool:
    within = _duration(node.get("within", 0), context)
    since = dt.datetime.min.replace(tzinfo=UTC)  # a window too long to measure counts every event
    if within is not None:
        with contextlib.suppress(OverflowError):
            since = _now(context) - within
    count = context.count_events(node["did"], node.get("where"), since)
    return count >= int(node.get("at_least") or 1)


# ---- condition functions ----------------------------------------------------------

MISMATCH = object()
"""What :func:`as_kind` gives for a value that is not of the kind asked for."""


def as_kind(value: Any, kind: str) -> Any:
    """``value`` as a value of type ``kind`` (see :mod:`dsl.typecheck`), or :data:`MISMATCH`."""
    if kind == "any":
        return value
    if kind == "string":
        return value if isinstance(value, str) else MISMATCH
    if kind == "number":
        return value if _is_number(value) and math.isfinite(value) else MISMATCH
    if kind == "bool":
        return value if isinstance(value, bool) else MISMATCH
    if kind in ("date", "datetime"):
        temporal = as_temporal(value) if isinstance(value, (str, dt.date)) else None
        if temporal is None:
            return MISMATCH
        if kind == "datetime":
            return _midnight(temporal)
        return temporal.astimezone(UTC).date() if isinstance(temporal, dt.datetime) else temporal
    wanted = {"list": list, "duration": dt.timedelta, "time": dt.time}.get(kind)
    return value if wanted is not None and isinstance(value, wanted) else MISMATCH


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    for kinds, word in (
        ((int, float), "a number"),
        (str, "a string"),
        (dt.datetime, "a date-time"),
        (dt.date, "a date"),
        (list, "a list"),
        (dt.timedelta, "a duration"),
    ):
        if isinstance(value, kinds):
            return word
    return f"a {type(value).__name__}"


def _failed(context: Any, name: str, problem: str) -> None:
    report = getattr(context, "function_failed", None)
    if report is not None:
        report(name, problem)


def _call(node: Any, context: EvalContext) -> Any:
    name = node["call"]
    args = [evaluate(arg, context) for arg in node.get("args") or ()]
    lookup = getattr(context, "function", None)
    function = lookup(name) if lookup is not None else None
    if function is None or function.implementation is None:
        _failed(context, name, "no installed plugin provides it")
        return None
    params = tuple(function.params)
    if len(args) != len(params):
        _failed(
            context,
            name,
            f"it takes {len(params)} argument(s) now, the rule passes {len(args)}; apply the rules again to check them",
        )
        return None
    values = [as_kind(value, kind) if value is not None else None for value, kind in zip(args, params, strict=True)]
    if any(value is None or value is MISMATCH for value in values):
        return None
    try:
        result = function.implementation(*values)
    except Exception as error:
        _failed(context, name, f"{type(error).__name__}: {error}")
        return None
    if result is None:
        return None
    checked = as_kind(result, function.result)
    if checked is MISMATCH:
        _failed(context, name, f"it returned {_kind_of(result)}, but declares {function.result}")
        return None
    return checked


_HANDLERS: dict[str, Handler] = {
    "duration": _duration,
    "date": _date,
    "time": _time,
    "now": lambda arg, context: _now(context),
    "today": lambda arg, context: _now(context).date(),
    "field": lambda name, context: context.contact_field(name),
    "prop": lambda path, context: context.event_prop(path),
    "==": _binary(lambda a, b: a == b),
    "!=": _binary(lambda a, b: a != b),
    "<": _binary(lambda a, b: a < b),
    "<=": _binary(lambda a, b: a <= b),
    ">": _binary(lambda a, b: a > b),
    ">=": _binary(lambda a, b: a >= b),
    "in": _in,
    "contains": _contains,
    "starts_with": _strings(str.startswith),
    "ends_with": _strings(str.endswith),
    "matches": _matches,
    "is_set": _is_set,
    "has_tag": lambda tag, context: bool(context.has_tag(tag)),
    "segment": lambda name, context: bool(context.in_segment(name)),
    "+": _arith("+"),
    "-": _arith("-"),
    "and": _junction(False),
    "or": _junction(True),
    "not": _not,
}
