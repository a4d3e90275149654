"""Build the syntax tree while lark parses (an embedded LALR transformer).

The parser keeps every token (``keep_all_tokens``), so each method sees the
keywords of its alternative as well; they give the node its exact span and
are otherwise skipped. One method per grammar alias.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from typing import Any, TypeVar

from lark import Token, Transformer

from . import ast as A
from .ast import Span

SEPARATORS = frozenset({"_NL", "_SEMI"})
#: what a transformer method gets: tokens and what the methods of its children built
Children = list[Any]
_Junction = TypeVar("_Junction", A.And, A.Or)


class Seq:
    """A list under construction (steps, list items) with the extent of its parts."""

    __slots__ = ("first", "items", "last")

    def __init__(self, item: Any = None) -> None:
        self.items: list[Any] = [] if item is None else [item]
        self.first = item
        self.last = item

    def add(self, item: Any) -> Seq:
        self.items.append(item)
        if self.first is None:
            self.first = item
        self.last = item
        return self


class Extra:
    """A clause (``where …``, ``at least … times``, a rule body) waiting for its parent."""

    __slots__ = ("kind", "span", "value")

    def __init__(self, kind: str, value: Any, children: Children) -> None:
        self.kind, self.value, self.span = kind, value, span_of(children)


def _extent(item: Any) -> Span | None:
    """Where a child of a reduction lies; None for empty parts and separators."""
    if isinstance(item, Token):
        return None if item.type in SEPARATORS else token_span(item)
    if isinstance(item, A.Node):
        return item.span
    if isinstance(item, Seq) and item.first is not None:
        first, last = _extent(item.first), _extent(item.last)
        if first is None or last is None:
            return None
        return Span(first.line, first.column, last.end_line, last.end_column)
    if isinstance(item, Extra) and item.span is not A.NO_SPAN:
        return item.span
    return None


def span_of(children: Children) -> Span:
    """The extent of ``children``, ignoring separators and empty parts."""
    first = next((e for e in map(_extent, children) if e is not None), None)
    if first is None:
        return A.NO_SPAN
    last = next(e for e in map(_extent, reversed(children)) if e is not None)
    return Span(first.line, first.column, last.end_line, last.end_column)


def token_span(token: Token) -> Span:
    """Where *token* lies (the parser propagates positions, so a token from it always has them)."""
    if token.line is None or token.column is None or token.end_line is None or token.end_column is None:
        return A.NO_SPAN
    return Span(token.line, token.column, token.end_line, token.end_column)


_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}
_ESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)


def unescape(literal: str) -> str:
    """The value of a string literal: ``\\"``, ``\\\\``, ``\\n`` and ``\\t`` are escapes."""
    body = literal[1:-1]
    if "\\" not in body:
        return body
    return _ESCAPE_RE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(0)), body)


def _number(text: str) -> int | float:
    return float(text) if "." in text else int(text)


def _tokens(children: Children, kinds: Collection[str]) -> list[Token]:
    return [c for c in children if isinstance(c, Token) and c.type in kinds]


def _nodes(children: Children) -> list[A.Node]:
    return [c for c in children if isinstance(c, A.Node)]


def _extras(children: Children) -> dict[str, Extra]:
    return {c.kind: c for c in children if isinstance(c, Extra)}


def _seqs(children: Children) -> list[tuple[Any, ...]]:
    return [tuple(c.items) for c in children if isinstance(c, Seq)]


def literal(token: Token) -> Any:
    """The node for a value token (strings, numbers, durations, names …).

    Typed Any: which node it is follows from the token's type, which the grammar fixes at each call.
    """
    span = token_span(token)
    kind, text = token.type, str(token)
    if kind == "STRING":
        return A.String(unescape(text), span=span)
    if kind == "NUMBER":
        return A.Number(_number(text), span=span)
    if kind == "DURATION":
        return A.Duration(int(text[:-1]), text[-1], span=span)
    if kind == "TIME":
        hour, minute = text.split(":")
        return A.Time(int(hour), int(minute), span=span)
    if kind == "DATE":
        return A.Date(text, span=span)
    if kind == "DOTTED":
        return A.Path(tuple(text.split(".")), span=span)
    return A.Word(text, span=span)


def _event(token: Token) -> A.EventName:
    return A.EventName(str(token), span=token_span(token))


def _one(children: Children, kind: str) -> Any:
    return literal(_tokens(children, {kind})[0])


def _maybe(children: Children, kind: str) -> Any:
    found = _tokens(children, {kind})
    return literal(found[0]) if found else None


def _flatten(cls: type[_Junction], children: Children) -> _Junction:
    """An n-ary ``and``/``or`` from ``a and b and …``; a parenthesised chain of the same
    kind is merged in, so ``(a and b) and c`` and ``a and b and c`` are one tree."""
    items: list[A.Expr] = []
    for child in children:
        if isinstance(child, Token):
            continue
        items.extend(child.items if isinstance(child, cls) else (child,))
    return cls(tuple(items), span=span_of(children))


class AstBuilder(Transformer[Token, Any]):
    """Turns lark's reductions into :mod:`dsl.ast` nodes (see grammar.lark aliases)."""

    # ---- program and rules ----------------------------------------------------

    def program(self, children: Children) -> Any:
        return [c for c in children if isinstance(c, A.Rule)]

    def named_rule(self, children: Children) -> A.Rule:
        body = children[-1]
        name = literal(children[1])
        header = tuple(c for c in children[2:-1] if isinstance(c, A.HEADER_KINDS))
        return A.Rule(name, header, *body.value, span=span_of(children))

    def anonymous_rule(self, children: Children) -> A.Rule:
        body = children[0]
        return A.Rule(None, (), *body.value, span=span_of(children))

    def _body(self, children: Children, has_condition: bool) -> Extra:
        nodes = _nodes(children)
        trigger = nodes[0]
        condition = nodes[1] if has_condition else None
        steps = _seqs(children)[0]
        return Extra("body", (trigger, condition, steps), children)

    def open_body(self, children: Children) -> Any:
        return self._body(children, False)

    def closed_body(self, children: Children) -> Any:
        return self._body(_strip_seps(children), False)

    def open_body_if(self, children: Children) -> Any:
        return self._body(children, True)

    def closed_body_if(self, children: Children) -> Any:
        return self._body(_strip_seps(children), True)

    # ---- header -------------------------------------------------------------------

    def once(self, children: Children) -> A.EntryPolicy:
        return A.EntryPolicy("once", span=span_of(children))

    def once_every(self, children: Children) -> A.EntryPolicy:
        return A.EntryPolicy("once_every", _one(children, "DURATION"), span=span_of(children))

    def always(self, children: Children) -> A.EntryPolicy:
        return A.EntryPolicy("always", span=span_of(children))

    def goal(self, children: Children) -> A.Goal:
        return A.Goal(_event(children[1]), span=span_of(children))

    def goal_where(self, children: Children) -> A.Goal:
        return A.Goal(_event(children[1]), children[3], span=span_of(children))

    def quiet_hours(self, children: Children) -> A.QuietHours:
        start, end = (literal(t) for t in _tokens(children, {"TIME"}))
        return A.QuietHours(start, end, span=span_of(children))

    def priority(self, children: Children) -> A.CapPolicy:
        return A.CapPolicy("priority", _one(children, "NAME"), span=span_of(children))

    def on_cap(self, children: Children) -> A.CapPolicy:
        return A.CapPolicy("on cap", _one(children, "NAME"), span=span_of(children))

    # ---- triggers -----------------------------------------------------------------

    def event_trigger(self, children: Children) -> A.EventTrigger:
        return A.EventTrigger(_event(children[0]), span=span_of(children))

    def schedule_trigger(self, children: Children) -> A.ScheduleTrigger:
        return A.ScheduleTrigger(str(children[1]), _maybe(children, "TIME"), span=span_of(children))

    schedule_trigger_at = schedule_trigger

    def interval_trigger(self, children: Children) -> A.IntervalTrigger:
        return A.IntervalTrigger(_one(children, "DURATION"), span=span_of(children))

    def anniversary_trigger(self, children: Children) -> A.AnniversaryTrigger:
        field = _one(children, "DOTTED")
        return A.AnniversaryTrigger(field, _maybe(children, "TIME"), span=span_of(children))

    anniversary_trigger_at = anniversary_trigger

    def relative_trigger(self, children: Children) -> A.RelativeDateTrigger:
        offset = literal(children[0])
        return A.RelativeDateTrigger(
            offset, str(children[1]), _one(children, "DOTTED"), _maybe(children, "TIME"), span=span_of(children)
        )

    relative_trigger_at = relative_trigger

    def inactivity_trigger(self, children: Children) -> A.InactivityTrigger:
        return A.InactivityTrigger(_event(children[1]), _one(children, "DURATION"), span=span_of(children))

    # ---- blocks -------------------------------------------------------------------

    def empty_block(self, children: Children) -> Seq:
        return Seq()

    def block(self, children: Children) -> Any:
        return next(c for c in children if isinstance(c, Seq))

    def first_step(self, children: Children) -> Seq:
        return Seq(children[0])

    def more_steps(self, children: Children) -> Seq:
        steps: Seq = children[0]
        return steps.add(children[-1])

    # ---- steps --------------------------------------------------------------------

    def send(self, children: Children) -> A.Send:
        return A.Send(literal(children[1]), literal(children[2]), span=span_of(children))

    def send_best_time(self, children: Children) -> A.Send:
        within = _one(children, "DURATION")
        return A.Send(literal(children[1]), literal(children[2]), within, span=span_of(children))

    def wait(self, children: Children) -> A.Wait:
        return A.Wait(literal(children[1]), span=span_of(children))

    def wait_until(self, children: Children) -> A.WaitUntil | A.WaitUntilTime:
        expr = children[2]
        if isinstance(expr, A.Time):
            return A.WaitUntilTime(expr, span=span_of(children))
        return A.WaitUntil(expr, span=span_of(children))

    def wait_until_at(self, children: Children) -> A.WaitUntil:
        return A.WaitUntil(children[2], literal(children[4]), span=span_of(children))

    def wait_where(self, children: Children) -> Extra:
        return Extra("where", children[1], children)

    def wait_for(self, children: Children) -> A.WaitFor:
        where = _extras(children).get("where")
        blocks = _seqs(children)
        return A.WaitFor(
            _event(children[2]),
            where.value if where else None,
            _one(children, "DURATION"),
            blocks[0] if blocks else None,
            blocks[1] if len(blocks) > 1 else None,
            span=span_of(children),
            else_span=_else_span(children),
        )

    wait_for_then = wait_for
    wait_for_then_else = wait_for

    def elif_clause(self, children: Children) -> A.Branch:
        return A.Branch(children[1], tuple(children[3].items), span=span_of(children))

    def if_step(self, children: Children) -> A.If:
        first = A.Branch(children[1], tuple(children[3].items), span=span_of(children[:4]))
        branches = (first,) + tuple(c for c in children[4:] if isinstance(c, A.Branch))
        blocks = _seqs(children[4:])
        else_steps = blocks[0] if blocks else None
        return A.If(branches, else_steps, span=span_of(children), else_span=_else_span(children))

    if_else_step = if_step

    def split_arm(self, children: Children) -> A.SplitArm:
        share = int(str(children[0])[:-1])
        return A.SplitArm(share, tuple(children[2].items), span=span_of(children))

    def split(self, children: Children) -> A.Split:
        arms = tuple(c for c in children if isinstance(c, A.SplitArm))
        return A.Split(arms, span=span_of(children))

    def split_auto(self, children: Children) -> A.Split:
        arms = tuple(c for c in children if isinstance(c, A.SplitArm))
        return A.Split(arms, outcome=_event(children[3]), window=_one(children, "DURATION"), span=span_of(children))

    def tag(self, children: Children) -> A.TagStep:
        return A.TagStep(literal(children[1]), span=span_of(children))

    def untag(self, children: Children) -> A.UntagStep:
        return A.UntagStep(literal(children[1]), span=span_of(children))

    def set_field(self, children: Children) -> A.SetField:
        return A.SetField(literal(children[1]), children[3], span=span_of(children))

    def score_up(self, children: Children) -> A.ScoreStep:
        return A.ScoreStep(_number(str(children[2])), span=span_of(children))

    def score_down(self, children: Children) -> A.ScoreStep:
        return A.ScoreStep(-_number(str(children[2])), sign="-", span=span_of(children))

    def note(self, children: Children) -> A.NoteStep:
        return A.NoteStep(literal(children[1]), span=span_of(children))

    def task(self, children: Children) -> A.TaskStep:
        text, team = (literal(t) for t in _tokens(children, {"STRING"}))
        return A.TaskStep(text, team, _maybe(children, "DURATION"), span=span_of(children))

    task_due = task

    def notify(self, children: Children) -> A.NotifyStep:
        return A.NotifyStep(literal(children[1]), literal(children[2]), span=span_of(children))

    def start_rule(self, children: Children) -> A.StartStep:
        return A.StartStep(literal(children[1]), span=span_of(children))

    def stop(self, children: Children) -> A.StopStep:
        return A.StopStep(span=span_of(children))

    def plugin_step(self, children: Children) -> A.PluginStep:
        args = tuple(literal(c) for c in children[1:])
        return A.PluginStep(literal(children[0]), args, span=span_of(children))

    # ---- expressions ----------------------------------------------------------

    def or_(self, children: Children) -> A.Or:
        return _flatten(A.Or, children)

    def and_(self, children: Children) -> A.And:
        return _flatten(A.And, children)

    def not_(self, children: Children) -> A.Not:
        return A.Not(children[1], span=span_of(children))

    def compare(self, children: Children) -> A.Compare:
        return A.Compare(str(children[1]), children[0], children[2], span=span_of(children))

    @staticmethod
    def _test(op: str) -> Callable[[AstBuilder, Children], A.Compare]:
        """A method building the comparison *op* (a factory used while the class body runs)."""

        def method(self: AstBuilder, children: Children) -> A.Compare:
            return A.Compare(op, children[0], children[-1], span=span_of(children))

        return method

    in_ = _test("in")
    not_in = _test("not in")
    contains = _test("contains")
    starts_with = _test("starts with")
    ends_with = _test("ends with")
    del _test  # not a method of the transformer: lark would take it for a rule

    def matches(self, children: Children) -> A.Matches:
        return A.Matches(children[0], literal(children[2]), span=span_of(children))

    def is_set(self, children: Children) -> A.IsSet:
        return A.IsSet(children[0], False, span=span_of(children))

    def is_not_set(self, children: Children) -> A.IsSet:
        return A.IsSet(children[0], True, span=span_of(children))

    def has_tag(self, children: Children) -> A.HasTag:
        return A.HasTag(literal(children[2]), span=span_of(children))

    def in_segment(self, children: Children) -> A.InSegment:
        return A.InSegment(literal(children[2]), span=span_of(children))

    def did_where(self, children: Children) -> Extra:
        return Extra("where", children[1], children)

    def did_times(self, children: Children) -> Extra:
        return Extra("times", literal(children[2]), children)

    def did(self, children: Children) -> A.Did:
        extras = _extras(children)
        where, times = extras.get("where"), extras.get("times")
        return A.Did(
            _event(children[1]),
            where.value if where else None,
            times.value if times else None,
            literal(children[-1]),
            span=span_of(children),
        )

    def add(self, children: Children) -> A.Arith:
        return A.Arith("+", children[0], children[2], span=span_of(children))

    def sub(self, children: Children) -> A.Arith:
        return A.Arith("-", children[0], children[2], span=span_of(children))

    # ---- atoms ------------------------------------------------------------------

    def _literal(self, children: Children) -> Any:
        return literal(children[0])

    string = number = duration = time = date = path = _literal

    def negative(self, children: Children) -> A.Number:
        return A.Number(-_number(str(children[1])), span=span_of(children))

    def true(self, children: Children) -> A.Bool:
        return A.Bool(True, span=span_of(children))

    def false(self, children: Children) -> A.Bool:
        return A.Bool(False, span=span_of(children))

    def null(self, children: Children) -> A.Null:
        return A.Null(span=span_of(children))

    def tag_ref(self, children: Children) -> A.TagRef:
        return A.TagRef(span=span_of(children))

    def now(self, children: Children) -> A.Now:
        return A.Now(span=span_of(children))

    def today(self, children: Children) -> A.Today:
        return A.Today(span=span_of(children))

    def paren(self, children: Children) -> Any:
        return children[1]

    def call(self, children: Children) -> A.Call:
        args = next((tuple(c.items) for c in children if isinstance(c, Seq)), ())
        return A.Call(literal(children[0]), args, span=span_of(children))

    def condition(self, children: Children) -> Any:
        return children[0]

    def empty_list(self, children: Children) -> A.ListLit:
        return A.ListLit((), span=span_of(children))

    def list(self, children: Children) -> A.ListLit:
        return A.ListLit(tuple(children[1].items), span=span_of(children))

    def first_item(self, children: Children) -> Seq:
        return Seq(children[0])

    def more_items(self, children: Children) -> Seq:
        items: Seq = children[0]
        return items.add(children[2])


def _else_span(children: Children) -> Span | None:
    found = _tokens(children, {"ELSE"})
    return token_span(found[0]) if found else None


def _strip_seps(children: Children) -> Children:
    """Drop the separators after a rule's closing ``end``."""
    end = len(children)
    while end and isinstance(children[end - 1], Token) and children[end - 1].type in SEPARATORS:
        end -= 1
    return children[:end]
