"""The compiled plan's types: the contract between :mod:`dsl.compiler` and the engine (see docs/plan.md).

A plan is JSON (the engine stores one per rule version), so it is typed with TypedDicts: the compiler's
output and the engine's reading are checked by mypy, and :func:`plan_problems` checks a plan at run time
against these same types (the tests run it on every compiled case).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any, ForwardRef, Literal, TypedDict, Union

#: the plan format this Nudge writes and runs. 2: every rule plan carries ``version``, and ``wait_until``
#: always has ``at`` (null when the step gives none). Stored plans of version 1 are upgraded by migration 0017.
PLAN_VERSION = 2

Scalar = Union[str, int, float, bool, None]
#: a condition or expression tree (see docs/plan.md, "Condition trees"): JSON
Tree = Union[str, int, float, bool, None, list["Tree"], dict[str, "Tree"]]


class Entry(TypedDict):
    """Who may enter the rule again: ``entry.kind``, and ``every`` seconds for ``once_every``."""

    kind: Literal["default", "once", "once_every", "always"]
    every: int | None


class Goal(TypedDict):
    """The event that ends a journey early, and the condition it must meet (``prop`` reads it)."""

    event: str
    where: Tree


class QuietHours(TypedDict):
    """The rule's own quiet hours, local ``HH:MM`` (the window may wrap midnight)."""

    start: str
    end: str


class EventTrigger(TypedDict):
    kind: Literal["event"]
    event: str


class ScheduleTrigger(TypedDict):
    """``every monday at 08:30`` (``day``, ``at``) or ``every 1h`` (``interval`` seconds)."""

    kind: Literal["schedule"]
    day: str | None
    at: str | None
    interval: int | None


class AnniversaryTrigger(TypedDict):
    kind: Literal["anniversary"]
    field: str
    at: str


class RelativeDateTrigger(TypedDict):
    """``7d before contact.renewal_date``: ``offset`` seconds, negative before the date."""

    kind: Literal["relative_date"]
    field: str
    offset: int
    at: str


class InactivityTrigger(TypedDict):
    kind: Literal["inactivity"]
    event: str
    seconds: int


Trigger = Union[EventTrigger, ScheduleTrigger, AnniversaryTrigger, RelativeDateTrigger, InactivityTrigger]


class _SendOptions(TypedDict, total=False):
    #: ``at best time within D``: D in seconds (absent: send at once)
    best_within: int


class SendOp(_SendOptions):
    id: str
    line: int | None
    op: Literal["send"]
    channel: str
    name: str


class WaitOp(TypedDict):
    id: str
    line: int | None
    op: Literal["wait"]
    seconds: int


class WaitUntilTimeOp(TypedDict):
    id: str
    line: int | None
    op: Literal["wait_until_time"]
    at: str


class WaitUntilOp(TypedDict):
    id: str
    line: int | None
    op: Literal["wait_until"]
    expr: Tree
    source: str
    at: str | None


class WaitForOp(TypedDict):
    """Wait for ``event`` up to ``seconds``; on time out, jump to ``on_timeout``."""

    id: str
    line: int | None
    op: Literal["wait_for"]
    event: str
    where: Tree
    seconds: int
    on_timeout: int


# ``else`` is a keyword, so this one is declared the functional way
BranchOp = TypedDict(
    "BranchOp", {"id": str, "line": int | None, "op": Literal["branch"], "cond": Tree, "source": str, "else": int}
)


class JumpOp(TypedDict):
    id: str
    line: int | None
    op: Literal["jump"]
    to: int


class Arm(TypedDict):
    name: str
    share: int
    to: int


class AutoSplit(TypedDict):
    """An auto-winner split's outcome: *event* for the contact within *seconds* of being assigned an arm."""

    event: str
    seconds: int


class _SplitOp(TypedDict):
    id: str
    line: int | None
    op: Literal["split"]
    arms: list[Arm]


class SplitOp(_SplitOp, total=False):
    """A split; with ``auto`` it is an auto-winner split (Thompson sampling, server/engine/autosplit.py)."""

    auto: AutoSplit


class TagOp(TypedDict):
    id: str
    line: int | None
    op: Literal["tag", "untag"]
    tag: str


class SetOp(TypedDict):
    id: str
    line: int | None
    op: Literal["set"]
    field: str
    value: Tree


class ScoreOp(TypedDict):
    id: str
    line: int | None
    op: Literal["score"]
    delta: int | float


class NoteOp(TypedDict):
    id: str
    line: int | None
    op: Literal["note"]
    text: str


class TaskOp(TypedDict):
    id: str
    line: int | None
    op: Literal["task"]
    text: str
    team: str
    due: int | None


class NotifyOp(TypedDict):
    id: str
    line: int | None
    op: Literal["notify"]
    team: str
    text: str


class StartOp(TypedDict):
    id: str
    line: int | None
    op: Literal["start"]
    rule: str


class StopOp(TypedDict):
    id: str
    line: int | None
    op: Literal["stop"]


class PluginOp(TypedDict):
    id: str
    line: int | None
    op: Literal["plugin"]
    step: str
    args: list[Tree]


class ExitOp(TypedDict):
    id: str
    line: int | None
    op: Literal["exit"]


#: one instruction of a rule's ``steps``, told apart by ``op``
Instruction = Union[
    SendOp,
    WaitOp,
    WaitUntilTimeOp,
    WaitUntilOp,
    WaitForOp,
    BranchOp,
    JumpOp,
    SplitOp,
    TagOp,
    SetOp,
    ScoreOp,
    NoteOp,
    TaskOp,
    NotifyOp,
    StartOp,
    StopOp,
    PluginOp,
    ExitOp,
]


class _CapPolicy(TypedDict, total=False):
    #: ``priority high|normal|low`` (absent: normal)
    priority: Literal["high", "normal", "low"]
    #: ``on cap skip|wait`` (absent: skip)
    on_cap: Literal["skip", "wait"]


class RulePlan(_CapPolicy):
    """One rule's plan: what the engine stores with a rule version and runs."""

    version: int
    name: str
    line: int
    fingerprint: str
    entry: Entry
    goal: Goal | None
    quiet_hours: QuietHours | None
    trigger: Trigger
    condition: Tree
    #: ``[key, value]`` equality tests every match must pass (event triggers only)
    match: list[list[Scalar]]
    steps: list[Instruction]


class ProgramPlan(TypedDict):
    """The compiler's output for one file: a plan per rule."""

    plan_version: int
    source: str
    rules: list[RulePlan]


class PlanVersionError(ValueError):
    """A stored plan is of a format this Nudge does not run."""


def require_version(plan: Mapping[str, Any], where: str) -> None:
    """Refuse a plan of another format than :data:`PLAN_VERSION`.

    :param where: what holds the plan, for the message (``rule version 12``).
    :raises PlanVersionError: naming the version found and what to do.
    """
    version = plan.get("version")
    if version == PLAN_VERSION:
        return
    if isinstance(version, int) and not isinstance(version, bool) and version > PLAN_VERSION:
        raise PlanVersionError(
            f"{where} holds a plan of format version {version}, newer than this Nudge runs ({PLAN_VERSION}): "
            "it was compiled by a newer Nudge; upgrade Nudge, or apply the rules again with this one"
        )
    found = "no format version" if version is None else f"format version {version!r}"
    raise PlanVersionError(
        f"{where} holds a plan with {found}, older than this Nudge runs ({PLAN_VERSION}): "
        "run `nudge db upgrade` to bring stored plans up to date"
    )


def plan_problems(value: object, kind: object = ProgramPlan) -> list[str]:
    """What in *value* does not fit the type *kind* (a plan by default): ``rules[0].steps[3].op: …``; [] if it fits.

    Keys a TypedDict does not declare are problems too: the plan's contract lists every key.
    """
    problems: list[str] = []
    _check(value, kind, "plan", problems)
    return problems


def _check(value: object, kind: object, where: str, problems: list[str]) -> None:
    if isinstance(kind, (str, ForwardRef)):  # ``list["Tree"]``: the recursive alias, by name
        kind = globals()[kind if isinstance(kind, str) else kind.__forward_arg__]
    if kind is Any or kind is object:
        return
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if kind is None or kind is type(None):
        if value is not None:
            problems.append(f"{where}: expected null, got {value!r}")
    elif origin is Union or origin is types.UnionType:
        _check_union(value, args, where, problems)
    elif origin is Literal:
        if value not in args or isinstance(value, bool) != any(isinstance(arg, bool) for arg in args):
            problems.append(f"{where}: expected one of {', '.join(map(repr, args))}, got {value!r}")
    elif origin is list:
        if not isinstance(value, list):
            problems.append(f"{where}: expected a list, got {value!r}")
            return
        for index, item in enumerate(value):
            _check(item, args[0], f"{where}[{index}]", problems)
    elif origin is dict:
        if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
            problems.append(f"{where}: expected an object, got {value!r}")
            return
        for key, item in value.items():
            _check(item, args[1], f"{where}.{key}", problems)
    elif typing.is_typeddict(kind):
        _check_typeddict(value, kind, where, problems)
    elif kind is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            problems.append(f"{where}: expected a number, got {value!r}")
    elif isinstance(kind, type):
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            problems.append(f"{where}: expected {kind.__name__}, got {value!r}")
    else:
        raise TypeError(f"plan_problems cannot check the type {kind!r}")


def _check_union(value: object, members: tuple[object, ...], where: str, problems: list[str]) -> None:
    attempts: list[list[str]] = []
    for member in members:
        found: list[str] = []
        _check(value, member, where, found)
        if not found:
            return
        attempts.append(found)
    # ``X | None`` holding something, or a tagged object: report against the member meant, not every member
    meant = [found for member, found in zip(members, attempts, strict=True) if member is not type(None)]
    if len(meant) > 1:
        meant = [
            found
            for member, found in zip(members, attempts, strict=True)
            if isinstance(value, dict) and typing.is_typeddict(member) and _tag_matches(value, member)
        ]
    problems.extend(meant[0] if len(meant) == 1 else [f"{where}: {value!r} fits none of its possible types"])


def _tag_matches(value: dict[Any, Any], kind: object) -> bool:
    hints = typing.get_type_hints(kind)
    for tag in ("op", "kind"):
        if typing.get_origin(hints.get(tag)) is Literal:
            return value.get(tag) in typing.get_args(hints[tag])
    return False


def _check_typeddict(value: object, kind: object, where: str, problems: list[str]) -> None:
    name = getattr(kind, "__name__", "object")
    if not isinstance(value, dict):
        problems.append(f"{where}: expected {name} (an object), got {value!r}")
        return
    hints = typing.get_type_hints(kind)
    required: frozenset[str] = getattr(kind, "__required_keys__", frozenset())
    for key in sorted(required - value.keys()):
        problems.append(f"{where}: {name} lacks {key!r}")
    for key in sorted(value.keys() - hints.keys(), key=str):
        problems.append(f"{where}: {name} has no key {key!r}")
    for key, hint in hints.items():
        if key in value:
            _check(value[key], hint, f"{where}.{key}", problems)
