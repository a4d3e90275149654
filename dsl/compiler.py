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
from typing import Any

from . import ast as A
from .condition_tree import CompileError, match_keys, tree  # noqa: F401 - re-exported
from .formatter import format_expr, format_program, step_text

PLAN_VERSION = 1
DEFAULT_AT = "09:00"


def compile_program(program: A.Program) -> dict[str, Any]:
    """The JSON-serialisable plan for a program that checked without errors.

    :raises CompileError: for a form the checker would have rejected.
    """
    return {
        "plan_version": PLAN_VERSION,
        "source": program.filename,
        "rules": [compile_rule(rule, program.filename) for rule in program.rules],
    }


def compile_rule(rule: A.Rule, filename: str = "<input>") -> dict[str, Any]:
    entry = rule.entry
    goal = rule.goal
    quiet = rule.quiet_hours
    canonical = format_program(A.Program(filename, (rule,)))
    return {
        "name": rule.display_name(filename),
        "line": rule.span.line,
        "fingerprint": hashlib.sha256(canonical.encode()).hexdigest()[:16],
        "entry": {
            "kind": entry.kind if entry is not None else "default",
            "every": entry.every.seconds if entry is not None and entry.every else None,
        },
        "goal": None if goal is None else {
            "event": goal.event.name,
            "where": tree(goal.where) if goal.where is not None else None,
        },
        "quiet_hours": None if quiet is None else {"start": str(quiet.start), "end": str(quiet.end)},
        "trigger": trigger(rule.trigger),
        "condition": tree(rule.condition) if rule.condition is not None else None,
        "match": match_keys(rule.condition) if isinstance(rule.trigger, A.EventTrigger) else [],
        "steps": _Emitter().program(rule.steps, rule.span.end_line),
    }


def trigger(node) -> dict[str, Any]:
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
        return {"kind": "relative_date", "field": node.field.rest,
                "offset": sign * node.offset.seconds, "at": _at(node.at)}
    if isinstance(node, A.InactivityTrigger):
        return {"kind": "inactivity", "event": node.event.name, "seconds": node.quiet.seconds}
    raise TypeError(f"not a trigger: {node!r}")


def _at(time: A.Time | None) -> str:
    return str(time) if time is not None else DEFAULT_AT


def step_id(*parts: str) -> str:
    """A short, stable identity from the step's structural path and content."""
    digest = hashlib.sha1("\x1f".join(parts).encode(), usedforsecurity=False).hexdigest()
    return "s" + digest[:10]


def _head(step) -> str:
    if isinstance(step, A.WaitFor) and step.then_steps is not None:
        return step_text(step) + " then"
    if isinstance(step, A.Split):
        return "split " + " ".join(f"{arm.share}%" for arm in step.arms)
    return step_text(step)


class _Emitter:
    """Lays steps out as instructions, patching jump targets as blocks close."""

    def __init__(self):
        self.code: list[dict[str, Any]] = []

    def program(self, steps, end_line: int) -> list[dict[str, Any]]:
        self.block(steps, "")
        self.emit(step_id("exit"), None, {"op": "exit"})
        self.code[-1]["line"] = end_line
        return self.code

    def emit(self, ident: str, node, fields: dict[str, Any]) -> int:
        instruction = {"id": ident, "line": node.span.line if node is not None else None}
        instruction.update(fields)
        self.code.append(instruction)
        return len(self.code) - 1

    @property
    def here(self) -> int:
        return len(self.code)

    def block(self, steps, parent: str) -> None:
        seen: Counter = Counter()
        for step in steps:
            head = _head(step)
            ident = step_id(parent, head, str(seen[head]))
            seen[head] += 1
            self.step(step, ident)

    def jump(self, ident: str, node) -> int:
        return self.emit(ident, node, {"op": "jump", "to": None})

    def step(self, step, ident: str) -> None:
        handler = getattr(self, "_" + type(step).__name__, None)
        if handler is None:
            raise TypeError(f"not a step: {step!r}")
        handler(step, ident)

    # ---- control flow ----------------------------------------------------------

    def _If(self, step: A.If, ident: str) -> None:  # noqa: N802 - named after the node class
        jumps = []
        last = len(step.branches) - 1
        for index, branch in enumerate(step.branches):
            text = format_expr(branch.condition)
            branch_id = ident if index == 0 else step_id(ident, f"elif{index}", text)
            test = self.emit(branch_id, branch, {
                "op": "branch", "cond": tree(branch.condition), "source": text, "else": None,
            })
            self.block(branch.steps, f"{ident}/then{index}")
            if index < last or step.else_steps is not None:
                jumps.append(self.jump(step_id(ident, f"jump{index}"), branch))
            self.code[test]["else"] = self.here
        if step.else_steps is not None:
            self.block(step.else_steps, f"{ident}/else")
        for jump in jumps:
            self.code[jump]["to"] = self.here

    def _WaitFor(self, step: A.WaitFor, ident: str) -> None:  # noqa: N802
        wait = self.emit(ident, step, {
            "op": "wait_for", "event": step.event.name,
            "where": tree(step.where) if step.where is not None else None,
            "seconds": step.timeout.seconds, "on_timeout": None,
        })
        if step.then_steps is not None:
            self.block(step.then_steps, f"{ident}/then")
            if step.else_steps is not None:
                jump = self.jump(step_id(ident, "jump"), step)
                self.code[wait]["on_timeout"] = self.here
                self.block(step.else_steps, f"{ident}/else")
                self.code[jump]["to"] = self.here
                return
        self.code[wait]["on_timeout"] = self.here

    def _Split(self, step: A.Split, ident: str) -> None:  # noqa: N802
        split = self.emit(ident, step, {"op": "split", "arms": []})
        jumps = []
        for index, arm in enumerate(step.arms):
            name = chr(ord("A") + index)
            self.code[split]["arms"].append({"name": name, "share": arm.share, "to": self.here})
            self.block(arm.steps, f"{ident}/{name}")
            if index < len(step.arms) - 1:
                jumps.append(self.jump(step_id(ident, f"jump{name}"), arm))
        for jump in jumps:
            self.code[jump]["to"] = self.here

    # ---- simple steps ----------------------------------------------------------

    def _Send(self, step: A.Send, ident):  # noqa: N802
        self.emit(ident, step, {"op": "send", "channel": step.channel.text,
                                "name": step.template.text})

    def _Wait(self, step: A.Wait, ident):  # noqa: N802
        self.emit(ident, step, {"op": "wait", "seconds": step.duration.seconds})

    def _WaitUntil(self, step: A.WaitUntil, ident):  # noqa: N802
        at = {"at": str(step.at)} if step.at is not None else {}  # absent: 09:00, as plans before `at` had
        self.emit(ident, step, {"op": "wait_until", "expr": tree(step.expr),
                                "source": format_expr(step.expr), **at})

    def _WaitUntilTime(self, step: A.WaitUntilTime, ident):  # noqa: N802
        self.emit(ident, step, {"op": "wait_until_time", "at": str(step.at)})

    def _TagStep(self, step, ident):  # noqa: N802
        self.emit(ident, step, {"op": "tag", "tag": step.tag.value})

    def _UntagStep(self, step, ident):  # noqa: N802
        self.emit(ident, step, {"op": "untag", "tag": step.tag.value})

    def _SetField(self, step: A.SetField, ident):  # noqa: N802
        self.emit(ident, step, {"op": "set", "field": step.target.rest, "value": tree(step.value)})

    def _ScoreStep(self, step: A.ScoreStep, ident):  # noqa: N802
        self.emit(ident, step, {"op": "score", "delta": step.delta})

    def _NoteStep(self, step, ident):  # noqa: N802
        self.emit(ident, step, {"op": "note", "text": step.text.value})

    def _TaskStep(self, step: A.TaskStep, ident):  # noqa: N802
        self.emit(ident, step, {"op": "task", "text": step.text.value, "team": step.team.value,
                                "due": step.due.seconds if step.due is not None else None})

    def _NotifyStep(self, step: A.NotifyStep, ident):  # noqa: N802
        self.emit(ident, step, {"op": "notify", "team": step.team.value, "text": step.text.value})

    def _StartStep(self, step: A.StartStep, ident):  # noqa: N802
        self.emit(ident, step, {"op": "start", "rule": step.rule.value})

    def _StopStep(self, step, ident):  # noqa: N802
        self.emit(ident, step, {"op": "stop"})

    def _PluginStep(self, step: A.PluginStep, ident):  # noqa: N802
        self.emit(ident, step, {"op": "plugin", "step": step.keyword.text,
                                "args": [_plugin_arg(arg) for arg in step.args]})


def _plugin_arg(arg) -> Any:
    if isinstance(arg, A.Word):
        return arg.text
    if isinstance(arg, A.Path):
        return str(arg)
    return tree(arg)
