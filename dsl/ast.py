"""The syntax tree of the rules language: frozen dataclasses with source spans.

Every node carries a :class:`Span`. Spans are left out of equality and
hashing (``compare=False``), so two trees are equal when they say the same
thing, wherever it was written: ``parse(fmt(x)).program == parse(x).program``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import NamedTuple, TypeVar, Union


class Span(NamedTuple):
    """Where a node was written: 1-based lines and columns; ``end_column`` is exclusive.

    A named tuple rather than a dataclass: every node has one, and tuples are
    several times cheaper to create.
    """

    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.line}:{self.column}-{self.end_line}:{self.end_column}"


NO_SPAN = Span(0, 0, 0, 0)


@dataclass(frozen=True)
class Node:
    """Base of every node; ``span`` is keyword-only and ignored by ``==``."""

    span: Span = field(default=NO_SPAN, compare=False, repr=False, kw_only=True)

    def children(self) -> Iterator[Node]:
        """The nodes directly below this one, in source order."""
        for name in _child_fields(type(self)):
            value = getattr(self, name)
            if isinstance(value, Node):
                yield value
            elif isinstance(value, tuple) and not isinstance(value, Span):
                for item in value:
                    if isinstance(item, Node):
                        yield item


_FIELDS: dict[type, tuple[str, ...]] = {}


def _child_fields(cls: type) -> tuple[str, ...]:
    """The fields of a node class that may hold nodes (computed once per class)."""
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in fields(cls) if f.compare)
    return names


def walk(node: Node) -> Iterator[Node]:
    """Every node below ``node`` (itself included), depth first, without recursion."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(list(current.children())))


def depth(node: Node) -> int:
    """How deeply the tree below ``node`` nests (a leaf is 1), without recursion."""
    deepest = 0
    stack = [(node, 1)]
    while stack:
        current, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in current.children())
    return deepest


# ---- expressions -------------------------------------------------------------


@dataclass(frozen=True)
class String(Node):
    value: str


@dataclass(frozen=True)
class Number(Node):
    value: int | float


@dataclass(frozen=True)
class Bool(Node):
    value: bool


@dataclass(frozen=True)
class Null(Node):
    pass


UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class Duration(Node):
    """``3d``: kept as written (amount and unit) so the formatter can print it back."""

    amount: int
    unit: str

    @property
    def seconds(self) -> int:
        return self.amount * UNIT_SECONDS[self.unit]


@dataclass(frozen=True)
class Time(Node):
    """A time of day, ``09:00``; validity (hour < 24) is the checker's business."""

    hour: int
    minute: int

    def __str__(self) -> str:
        return f"{self.hour:02d}:{self.minute:02d}"


@dataclass(frozen=True)
class Date(Node):
    """A calendar date as written, ``2026-12-31``; the checker validates it."""

    text: str


@dataclass(frozen=True)
class ListLit(Node):
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Path(Node):
    """A dotted path: ``contact.first_name``, ``event.order.total``."""

    parts: tuple[str, ...]

    @property
    def root(self) -> str:
        return self.parts[0]

    @property
    def rest(self) -> str:
        return ".".join(self.parts[1:])

    def __str__(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class TagRef(Node):
    """The word ``tag`` in ``tag == "vip"``."""


@dataclass(frozen=True)
class Now(Node):
    pass


@dataclass(frozen=True)
class Today(Node):
    pass


COMPARE_OPS = ("==", "!=", "<", "<=", ">", ">=")
TEST_OPS = COMPARE_OPS + ("in", "not in", "contains", "starts with", "ends with")


@dataclass(frozen=True)
class Compare(Node):
    """``left OP right`` for every operator in :data:`TEST_OPS`."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Matches(Node):
    subject: Expr
    pattern: String


@dataclass(frozen=True)
class IsSet(Node):
    subject: Expr
    negated: bool = False


@dataclass(frozen=True)
class HasTag(Node):
    tag: String


@dataclass(frozen=True)
class InSegment(Node):
    segment: String


@dataclass(frozen=True)
class Did(Node):
    """``did EVENT [where C] [at least N times] within D``."""

    event: EventName
    where: Expr | None
    at_least: Number | None
    within: Duration


@dataclass(frozen=True)
class Arith(Node):
    op: str  # "+" or "-"
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Call(Node):
    """``domain(contact.email)``: a call of a condition function a plugin declares."""

    function: Word
    args: tuple[Expr, ...]

    @property
    def name(self) -> str:
        return self.function.text


@dataclass(frozen=True)
class And(Node):
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or(Node):
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Not(Node):
    item: Expr


_Value = Union[String, Number, Bool, Null, Duration, Time, Date, ListLit, Path, TagRef, Now, Today]
Expr = Union[_Value, Compare, Matches, IsSet, HasTag, InSegment, Did, Arith, Call, And, Or, Not]


@dataclass(frozen=True)
class EventName(Node):
    """A dotted event name where one is expected (``form.submitted``)."""

    name: str


@dataclass(frozen=True)
class Word(Node):
    """A channel, template or plugin-step word, with its own span for diagnostics."""

    text: str


# ---- triggers -------------------------------------------------------------------


@dataclass(frozen=True)
class EventTrigger(Node):
    event: EventName


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class ScheduleTrigger(Node):
    """``every day at 09:00`` / ``every monday``: ``day`` is ``"day"`` or a weekday."""

    day: str
    at: Time | None


@dataclass(frozen=True)
class IntervalTrigger(Node):
    every: Duration


@dataclass(frozen=True)
class AnniversaryTrigger(Node):
    field: Path
    at: Time | None


@dataclass(frozen=True)
class RelativeDateTrigger(Node):
    """``7d before contact.renewal_date [at 10:00]``."""

    offset: Duration
    direction: str  # "before" or "after"
    field: Path
    at: Time | None


@dataclass(frozen=True)
class InactivityTrigger(Node):
    event: EventName
    quiet: Duration


Trigger = Union[
    EventTrigger, ScheduleTrigger, IntervalTrigger, AnniversaryTrigger, RelativeDateTrigger, InactivityTrigger
]


# ---- steps ----------------------------------------------------------------------


@dataclass(frozen=True)
class Send(Node):
    """``send CHANNEL NAME [at best time within D]``: ``best_within`` is D, or None to send at once."""

    channel: Word
    template: Word
    best_within: Duration | None = None


@dataclass(frozen=True)
class Wait(Node):
    duration: Duration


@dataclass(frozen=True)
class WaitUntil(Node):
    """``wait until EXPR [at HH:MM]``, where EXPR is a date or date-time.

    A date resumes at ``at`` (09:00 when absent) in the contact's timezone; with ``at``, a
    date-time resumes on its local day at that time.
    """

    expr: Expr
    at: Time | None = None


@dataclass(frozen=True)
class WaitUntilTime(Node):
    """``wait until 09:00``: the next such time in the contact's timezone."""

    at: Time


@dataclass(frozen=True)
class WaitFor(Node):
    """``wait for EVENT [where C] up to D [then … [else …] end]``.

    ``then_steps`` is None when the step has no branches (it simply continues).
    """

    event: EventName
    where: Expr | None
    timeout: Duration
    then_steps: tuple[Step, ...] | None = None
    else_steps: tuple[Step, ...] | None = None
    else_span: Span | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class Branch(Node):
    """One ``if``/``elif`` condition with its steps."""

    condition: Expr
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class If(Node):
    branches: tuple[Branch, ...]
    else_steps: tuple[Step, ...] | None = None
    else_span: Span | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class SplitArm(Node):
    share: int
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Split(Node):
    """``split`` (fixed shares), or ``split auto on EVENT within DURATION`` when *outcome* is set (auto-winner)."""

    arms: tuple[SplitArm, ...]
    outcome: EventName | None = field(default=None, kw_only=True)
    window: Duration | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class TagStep(Node):
    tag: String


@dataclass(frozen=True)
class UntagStep(Node):
    tag: String


@dataclass(frozen=True)
class SetField(Node):
    target: Path
    value: Expr


@dataclass(frozen=True)
class ScoreStep(Node):
    delta: int | float
    #: the sign as written (``+`` or ``-``): ``score -0`` has a delta of 0 but reads as minus
    sign: str = field(default="+", compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class NoteStep(Node):
    text: String


@dataclass(frozen=True)
class TaskStep(Node):
    text: String
    team: String
    due: Duration | None = None


@dataclass(frozen=True)
class NotifyStep(Node):
    team: String
    text: String


@dataclass(frozen=True)
class StartStep(Node):
    rule: String


@dataclass(frozen=True)
class StopStep(Node):
    pass


PluginArg = Union[String, Number, Duration, Time, Date, Path, Word]


@dataclass(frozen=True)
class PluginStep(Node):
    """A step keyword the grammar does not know; plugins may register it."""

    keyword: Word
    args: tuple[PluginArg, ...]


Step = Union[
    Send,
    Wait,
    WaitUntil,
    WaitUntilTime,
    WaitFor,
    If,
    Split,
    TagStep,
    UntagStep,
    SetField,
    ScoreStep,
    NoteStep,
    TaskStep,
    NotifyStep,
    StartStep,
    StopStep,
    PluginStep,
]


# ---- rules ----------------------------------------------------------------------


@dataclass(frozen=True)
class EntryPolicy(Node):
    """``once per contact [every D]`` or ``always``; ``kind`` is once, once_every or always."""

    kind: str
    every: Duration | None = None


@dataclass(frozen=True)
class Goal(Node):
    """``until EVENT [where C]``."""

    event: EventName
    where: Expr | None = None


@dataclass(frozen=True)
class QuietHours(Node):
    start: Time
    end: Time


@dataclass(frozen=True)
class CapPolicy(Node):
    """``priority high|normal|low`` or ``on cap skip|wait`` (``keyword``): how the rule meets a frequency cap."""

    keyword: str
    value: Word


HeaderItem = Union[EntryPolicy, Goal, QuietHours, CapPolicy]
#: the node classes of a rule's header lines
HEADER_KINDS = (EntryPolicy, Goal, QuietHours, CapPolicy)
_Header = TypeVar("_Header", bound=Node)


@dataclass(frozen=True)
class Rule(Node):
    """One rule. ``name`` is None for a rule without a ``rule "…"`` header."""

    name: String | None
    header: tuple[HeaderItem, ...]
    trigger: Trigger
    condition: Expr | None
    steps: tuple[Step, ...]

    def display_name(self, filename: str) -> str:
        """The rule's name; a rule without a header is named ``<file>:<line>``."""
        if self.name is not None:
            return self.name.value
        return f"{filename}:{self.span.line}"

    def header_items(self, kind: type[_Header]) -> list[_Header]:
        return [item for item in self.header if isinstance(item, kind)]

    @property
    def entry(self) -> EntryPolicy | None:
        found = self.header_items(EntryPolicy)
        return found[0] if found else None

    @property
    def goal(self) -> Goal | None:
        found = self.header_items(Goal)
        return found[0] if found else None

    @property
    def quiet_hours(self) -> QuietHours | None:
        found = self.header_items(QuietHours)
        return found[0] if found else None

    def cap_policy(self, keyword: str) -> list[CapPolicy]:
        """The rule's ``priority`` or ``on cap`` lines (*keyword*)."""
        return [item for item in self.header_items(CapPolicy) if item.keyword == keyword]


@dataclass(frozen=True)
class Comment(Node):
    """A ``#`` comment; ``own_line`` tells a full-line comment from a trailing one."""

    text: str
    own_line: bool = field(default=True, compare=False)


@dataclass(frozen=True)
class Program(Node):
    filename: str
    rules: tuple[Rule, ...]
    comments: tuple[Comment, ...] = ()

    def rule_names(self) -> list[str]:
        return [rule.display_name(self.filename) for rule in self.rules]
