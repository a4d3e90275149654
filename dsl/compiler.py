"""Compile a checked program into the plan the engine runs (see docs/plan.md).

Steps become a flat list of instructions run by a program counter. Every
instruction has an ``id`` that does not depend on its position: it is made
from the block the step sits in, the step's own head (``send email welcome``,
``if did class.attended within 3d then``) and how many identical heads came
before it in that block. Adding, removing or editing other steps leaves it
unchanged, so contacts mid-journey can be mapped onto a new version.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Literal, cast

from . import ast as A
from .checker import CAP_POLICY
from .condition_tree import CompileError, match_keys, tree
from .formatter import format_expr, format_program, step_text
from .plan import (
    PLAN_VERSION,
    Arm,
    BranchOp,
    Entry,
    Instruction,
    JumpOp,
    ProgramPlan,
    RulePlan,
    SendOp,
    SplitOp,
    Tree,
    Trigger,
    WaitForOp,
)

__all__ = [
    "DEFAULT_AT",
    "PLAN_VERSION",
    "CompileError",
    "compile_program",
    "compile_rule",
    "match_keys",
    "step_id",
    "tree",
    "trigger",
]

DEFAULT_AT = "09:00"
#: a jump target not known yet: patched when the block it jumps past closes
_PATCHED_LATER = -1


def compile_program(program: A.Program) -> ProgramPlan:
    """The JSON-serialisable plan for a program that checked without errors.

    :raises CompileError: for a form the checker would have rejected.
    """
    return {
        "plan_version": PLAN_VERSION,
        "source": program.filename,
        "rules": [compile_rule(rule, program.filename) for rule in program.rules],
    }


def compile_rule(rule: A.Rule, filename: str = "<input>") -> RulePlan:
    """One rule's plan (see :class:`dsl.plan.RulePlan`)."""
    entry = rule.entry
    goal = rule.goal
    quiet = rule.quiet_hours
    canonical = format_program(A.Program(filename, (rule,)))
    plan: RulePlan = {
        "version": PLAN_VERSION,
        "name": rule.display_name(filename),
        "line": rule.span.line,
        "fingerprint": hashlib.sha256(canonical.encode()).hexdigest()[:16],
        "entry": _entry(entry),
        "goal": None
        if goal is None
        else {
            "event": goal.event.name,
            "where": tree(goal.where) if goal.where is not None else None,
        },
        "quiet_hours": None if quiet is None else {"start": str(quiet.start), "end": str(quiet.end)},
        "trigger": trigger(rule.trigger),
        "condition": tree(rule.condition) if rule.condition is not None else None,
        "match": match_keys(rule.condition) if isinstance(rule.trigger, A.EventTrigger) else [],
        "steps": _Emitter().program(rule.steps, rule.span.end_line),
    }
    # the rule's ``priority`` and ``on cap`` lines: in the plan only when written (older plans lack them)
    for item in rule.header_items(A.CapPolicy):
        if item.value.text not in CAP_POLICY[item.keyword]:
            raise CompileError(f"unknown {item.keyword} {item.value.text!r}")
        if item.keyword == "priority":
            plan["priority"] = cast(Literal["high", "normal", "low"], item.value.text)
        else:
            plan["on_cap"] = cast(Literal["skip", "wait"], item.value.text)
    return plan


_ENTRY_KINDS = ("default", "once", "once_every", "always")


def _entry(entry: A.EntryPolicy | None) -> Entry:
    if entry is None:
        return {"kind": "default", "every": None}
    if entry.kind not in _ENTRY_KINDS:
        raise CompileError(f"unknown entry policy {entry.kind!r}")
    kind = cast(Literal["default", "once", "once_every", "always"], entry.kind)  # checked just above
    return {"kind": kind, "every": entry.every.seconds if entry.every else None}


def trigger(node: A.Trigger) -> Trigger:
    """The plan's form of a rule's trigger."""
    if isinstance(node, A.EventTrigger):
        return {"kind": "event", "event": node.event.name}
    if isinstance(node, A.ScheduleTrigger):
        return {"kind": "schedule", "day": node.day, "at": _at(node.at), "interval": None}
    if isinstance(node, A.IntervalTrigger):
        return {"kind": "schedule", "day": None, "at": None, "interval": node.every.seconds}
    if isinstance(node, A.AnniversaryTrigger):
        return {"kind": "anniversary", "field": node.field.rest, "at": _at(node.at)}
    if isinstance(node, A.RelativeDateTrigger):
        sign = -1 if node.direction == "before" else 1
        return {
            "kind": "relative_date",
            "field": node.field.rest,
            "offset": sign * node.offset.seconds,
            "at": _at(node.at),
        }
    if isinstance(node, A.InactivityTrigger):
        return {"kind": "inactivity", "event": node.event.name, "seconds": node.quiet.seconds}
    raise TypeError(f"not a trigger: {node!r}")


def _at(time: A.Time | None) -> str:
    return str(time) if time is not None else DEFAULT_AT


def step_id(*parts: str) -> str:
    """A short, stable identity from the step's structural path and content."""
    digest = hashlib.sha1("\x1f".join(parts).encode(), usedforsecurity=False).hexdigest()
    return "s" + digest[:10]


def _head(step: A.Step) -> str:
    if isinstance(step, A.WaitFor) and step.then_steps is not None:
        return step_text(step) + " then"
    if isinstance(step, A.Split):
        auto = f"auto on {step.outcome.name} within {step.window.seconds}s " if step.outcome and step.window else ""
        return "split " + auto + " ".join(f"{arm.share}%" for arm in step.arms)
    return step_text(step)


def _line(node: A.Node) -> int:
    return node.span.line


class _Emitter:
    """Lays steps out as instructions, patching jump targets as blocks close."""

    def __init__(self) -> None:
        self.code: list[Instruction] = []

    def program(self, steps: tuple[A.Step, ...], end_line: int) -> list[Instruction]:
        self.block(steps, "")
        self.code.append({"id": step_id("exit"), "line": end_line, "op": "exit"})
        return self.code

    @property
    def here(self) -> int:
        return len(self.code)

    def block(self, steps: tuple[A.Step, ...], parent: str) -> None:
        seen: Counter[str] = Counter()
        for step in steps:
            head = _head(step)
            ident = step_id(parent, head, str(seen[head]))
            seen[head] += 1
            self.step(step, ident)

    def jump(self, ident: str, node: A.Node) -> JumpOp:
        jump: JumpOp = {"id": ident, "line": _line(node), "op": "jump", "to": _PATCHED_LATER}
        self.code.append(jump)
        return jump

    def step(self, step: A.Step, ident: str) -> None:
        if isinstance(step, A.If):
            self._if(step, ident)
        elif isinstance(step, A.WaitFor):
            self._wait_for(step, ident)
        elif isinstance(step, A.Split):
            self._split(step, ident)
        else:
            self.code.append(_simple(step, ident))

    # ---- control flow ----------------------------------------------------------

    def _if(self, step: A.If, ident: str) -> None:
        jumps = []
        last = len(step.branches) - 1
        for index, branch in enumerate(step.branches):
            text = format_expr(branch.condition)
            branch_id = ident if index == 0 else step_id(ident, f"elif{index}", text)
            test: BranchOp = {
                "id": branch_id,
                "line": _line(branch),
                "op": "branch",
                "cond": tree(branch.condition),
                "source": text,
                "else": _PATCHED_LATER,
            }
            self.code.append(test)
            self.block(branch.steps, f"{ident}/then{index}")
            if index < last or step.else_steps is not None:
                jumps.append(self.jump(step_id(ident, f"jump{index}"), branch))
            test["else"] = self.here
        if step.else_steps is not None:
            self.block(step.else_steps, f"{ident}/else")
        for jump in jumps:
            jump["to"] = self.here

    def _wait_for(self, step: A.WaitFor, ident: str) -> None:
        wait: WaitForOp = {
            "id": ident,
            "line": _line(step),
            "op": "wait_for",
            "event": step.event.name,
            "where": tree(step.where) if step.where is not None else None,
            "seconds": step.timeout.seconds,
            "on_timeout": _PATCHED_LATER,
        }
        self.code.append(wait)
        if step.then_steps is not None:
            self.block(step.then_steps, f"{ident}/then")
            if step.else_steps is not None:
                jump = self.jump(step_id(ident, "jump"), step)
                wait["on_timeout"] = self.here
                self.block(step.else_steps, f"{ident}/else")
                jump["to"] = self.here
                return
        wait["on_timeout"] = self.here

    def _split(self, step: A.Split, ident: str) -> None:
        arms: list[Arm] = []
        split: SplitOp = {"id": ident, "line": _line(step), "op": "split", "arms": arms}
        if step.outcome is not None and step.window is not None:
            split["auto"] = {"event": step.outcome.name, "seconds": step.window.seconds}
        self.code.append(split)
        jumps = []
        for index, arm in enumerate(step.arms):
            name = chr(ord("A") + index)
            arms.append({"name": name, "share": arm.share, "to": self.here})
            self.block(arm.steps, f"{ident}/{name}")
            if index < len(step.arms) - 1:
                jumps.append(self.jump(step_id(ident, f"jump{name}"), arm))
        for jump in jumps:
            jump["to"] = self.here


def _simple(step: A.Step, ident: str) -> Instruction:
    """The one instruction of a step without a block."""
    line = _line(step)
    if isinstance(step, A.Send):
        send: SendOp = {
            "id": ident,
            "line": line,
            "op": "send",
            "channel": step.channel.text,
            "name": step.template.text,
        }
        if step.best_within is not None:
            send["best_within"] = step.best_within.seconds
        return send
    if isinstance(step, A.Wait):
        return {"id": ident, "line": line, "op": "wait", "seconds": step.duration.seconds}
    if isinstance(step, A.WaitUntil):
        return {
            "id": ident,
            "line": line,
            "op": "wait_until",
            "expr": tree(step.expr),
            "source": format_expr(step.expr),
            "at": str(step.at) if step.at is not None else None,
        }
    if isinstance(step, A.WaitUntilTime):
        return {"id": ident, "line": line, "op": "wait_until_time", "at": str(step.at)}
    if isinstance(step, A.TagStep):
        return {"id": ident, "line": line, "op": "tag", "tag": step.tag.value}
    if isinstance(step, A.UntagStep):
        return {"id": ident, "line": line, "op": "untag", "tag": step.tag.value}
    if isinstance(step, A.SetField):
        return {"id": ident, "line": line, "op": "set", "field": step.target.rest, "value": tree(step.value)}
    if isinstance(step, A.ScoreStep):
        return {"id": ident, "line": line, "op": "score", "delta": step.delta}
    if isinstance(step, A.NoteStep):
        return {"id": ident, "line": line, "op": "note", "text": step.text.value}
    if isinstance(step, A.TaskStep):
        return {
            "id": ident,
            "line": line,
            "op": "task",
            "text": step.text.value,
            "team": step.team.value,
            "due": step.due.seconds if step.due is not None else None,
        }
    if isinstance(step, A.NotifyStep):
        return {"id": ident, "line": line, "op": "notify", "team": step.team.value, "text": step.text.value}
    if isinstance(step, A.StartStep):
        return {"id": ident, "line": line, "op": "start", "rule": step.rule.value}
    if isinstance(step, A.StopStep):
        return {"id": ident, "line": line, "op": "stop"}
    if isinstance(step, A.PluginStep):
        return {
            "id": ident,
            "line": line,
            "op": "plugin",
            "step": step.keyword.text,
            "args": [_plugin_arg(arg) for arg in step.args],
        }
    raise TypeError(f"not a step: {step!r}")


def _plugin_arg(arg: A.PluginArg) -> Tree:
    if isinstance(arg, A.Word):
        return arg.text
    if isinstance(arg, A.Path):
        return str(arg)
    return tree(arg)
