"""Canonical text for a program: what ``nudge fmt`` prints.

Two-space indentation, header lines indented under ``rule``, one step per
line, every block and rule closed with ``end``, one blank line between
rules, the fewest parentheses that keep the meaning. Comments stay where
they were relative to the code: a full-line comment goes before the line it
preceded, a trailing comment after the first line printed for its source line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

from . import ast as A
from .diagnostics import Diagnostic
from .parser import parse

INDENT = "  "

# Binding strength: a child weaker than its slot needs parentheses.
OR, AND, NOT, TEST, SUM, ATOM = range(1, 7)


class FormatError(ValueError):
    """The text does not parse; ``diagnostics`` says why."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        super().__init__("\n".join(d.format() for d in diagnostics))
        self.diagnostics = diagnostics


def fmt(text: str, filename: str = "<input>") -> str:
    """Canonical text for ``text``.

    :raises FormatError: when ``text`` has syntax errors.
    """
    result = parse(text, filename)
    if result.program is None:
        raise FormatError(result.diagnostics)
    return format_program(result.program)


def format_program(program: A.Program) -> str:
    """Canonical text for a parsed (or built) program."""
    lines: list[_Line] = []
    rules = program.rules
    for index, rule in enumerate(rules):
        if index:
            lines.append(_Line(0, "", None, blank=True))
        _rule(rule, lines)
        # Indented comments after the last step still belong to the rule.
        lines[-1].absorb_until = rules[index + 1].span.line if index + 1 < len(rules) else 1 << 62
    return _with_comments(lines, program.comments)


# ---- expressions --------------------------------------------------------------


def format_expr(expr: A.Expr, slot: int = OR) -> str:
    """One expression as text, parenthesised if it binds looser than ``slot``."""
    strength, text = _expr(expr)
    return f"({text})" if strength < slot else text


def _expr(expr: A.Expr) -> tuple[int, str]:
    if isinstance(expr, A.Or):
        return OR, " or ".join(format_expr(item, AND) for item in expr.items)
    if isinstance(expr, A.And):
        return AND, " and ".join(format_expr(item, NOT) for item in expr.items)
    if isinstance(expr, A.Not):
        return NOT, "not " + format_expr(expr.item, NOT)
    if isinstance(expr, A.Compare):
        return TEST, f"{format_expr(expr.left, SUM)} {expr.op} {format_expr(expr.right, SUM)}"
    if isinstance(expr, A.Matches):
        return TEST, f"{format_expr(expr.subject, SUM)} matches {string(expr.pattern.value)}"
    if isinstance(expr, A.IsSet):
        word = "is not set" if expr.negated else "is set"
        return TEST, f"{format_expr(expr.subject, SUM)} {word}"
    if isinstance(expr, A.HasTag):
        return TEST, f"has tag {string(expr.tag.value)}"
    if isinstance(expr, A.InSegment):
        return TEST, f"in segment {string(expr.segment.value)}"
    if isinstance(expr, A.Did):
        return TEST, did(expr)
    if isinstance(expr, A.Arith):
        return SUM, f"{format_expr(expr.left, SUM)} {expr.op} {format_expr(expr.right, ATOM)}"
    return ATOM, atom(expr)


def did(expr: A.Did) -> str:
    parts = ["did", expr.event.name]
    if expr.where is not None:
        parts += ["where", format_expr(expr.where)]
    if expr.at_least is not None:
        parts += ["at least", number(expr.at_least.value), "times"]
    parts += ["within", duration(expr.within)]
    return " ".join(parts)


def atom(expr: A.Expr | A.PluginArg) -> str:
    if isinstance(expr, A.String):
        return string(expr.value)
    if isinstance(expr, A.Number):
        return number(expr.value)
    if isinstance(expr, A.Bool):
        return "true" if expr.value else "false"
    if isinstance(expr, A.Null):
        return "null"
    if isinstance(expr, A.Duration):
        return duration(expr)
    if isinstance(expr, (A.Time, A.Path)):
        return str(expr)
    if isinstance(expr, A.Date):
        return expr.text
    if isinstance(expr, A.TagRef):
        return "tag"
    if isinstance(expr, A.Now):
        return "now"
    if isinstance(expr, A.Today):
        return "today"
    if isinstance(expr, A.ListLit):
        return "[" + ", ".join(format_expr(item) for item in expr.items) + "]"
    if isinstance(expr, A.Call):
        return f"{expr.name}(" + ", ".join(format_expr(arg) for arg in expr.args) + ")"
    if isinstance(expr, A.Word):
        return expr.text
    raise TypeError(f"not an expression: {expr!r}")


def string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def number(value: int | float) -> str:
    if isinstance(value, bool):
        raise TypeError("a bool is not a number")
    if isinstance(value, int):
        return str(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{value} cannot be written in the rules language")
    text = repr(value)
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    return text


def duration(value: A.Duration) -> str:
    return f"{value.amount}{value.unit}"


# ---- rules and steps ------------------------------------------------------------


class _Line:
    __slots__ = ("absorb_until", "anchor", "blank", "closer", "indent", "text")

    def __init__(self, indent: int, text: str, anchor: int | None, closer: bool = False, blank: bool = False) -> None:
        self.indent, self.text, self.anchor = indent, text, anchor
        self.closer, self.blank = closer, blank
        self.absorb_until = 0


def trigger_text(trigger: A.Trigger) -> str:
    if isinstance(trigger, A.EventTrigger):
        return trigger.event.name
    if isinstance(trigger, A.ScheduleTrigger):
        return f"every {trigger.day}" + _at(trigger.at)
    if isinstance(trigger, A.IntervalTrigger):
        return f"every {duration(trigger.every)}"
    if isinstance(trigger, A.AnniversaryTrigger):
        return f"anniversary of {trigger.field}" + _at(trigger.at)
    if isinstance(trigger, A.RelativeDateTrigger):
        return f"{duration(trigger.offset)} {trigger.direction} {trigger.field}" + _at(trigger.at)
    if isinstance(trigger, A.InactivityTrigger):
        return f"no {trigger.event.name} for {duration(trigger.quiet)}"
    raise TypeError(f"not a trigger: {trigger!r}")


def _at(time: A.Time | None) -> str:
    return f" at {time}" if time is not None else ""


def header_text(item: A.HeaderItem) -> str:
    if isinstance(item, A.EntryPolicy):
        if item.kind == "always":
            return "always"
        every = f" every {duration(item.every)}" if item.every is not None else ""
        return "once per contact" + every
    if isinstance(item, A.Goal):
        where = f" where {format_expr(item.where)}" if item.where is not None else ""
        return f"until {item.event.name}{where}"
    if isinstance(item, A.QuietHours):
        return f"quiet hours {item.start}-{item.end}"
    if isinstance(item, A.CapPolicy):
        return f"{item.keyword} {item.value.text}"
    raise TypeError(f"not a header line: {item!r}")


def _rule(rule: A.Rule, out: list[_Line]) -> None:
    line = rule.span.line
    if rule.name is not None:
        out.append(_Line(0, f"rule {string(rule.name.value)}", line))
        for item in rule.header:
            out.append(_Line(1, header_text(item), item.span.line))
    condition = f" and {format_expr(rule.condition)}" if rule.condition is not None else ""
    out.append(_Line(0, f"when {trigger_text(rule.trigger)}{condition} then", rule.trigger.span.line))
    _block(rule.steps, 1, out)
    out.append(_Line(0, "end", rule.span.end_line, closer=True))


def _block(steps: Iterable[A.Step], indent: int, out: list[_Line]) -> None:
    for step in steps:
        _step(step, indent, out)


def step_text(step: A.Step) -> str:
    """The one-line form of a simple step (not ``if``, ``split`` or branching ``wait for``)."""
    if isinstance(step, A.Send):
        best = f" at best time within {duration(step.best_within)}" if step.best_within is not None else ""
        return f"send {step.channel.text} {step.template.text}{best}"
    if isinstance(step, A.Wait):
        return f"wait {duration(step.duration)}"
    if isinstance(step, A.WaitUntil):
        at = f" at {step.at}" if step.at is not None else ""
        return f"wait until {format_expr(step.expr)}{at}"
    if isinstance(step, A.WaitUntilTime):
        return f"wait until {step.at}"
    if isinstance(step, A.WaitFor):
        where = f" where {format_expr(step.where)}" if step.where is not None else ""
        return f"wait for {step.event.name}{where} up to {duration(step.timeout)}"
    if isinstance(step, A.TagStep):
        return f"tag {string(step.tag.value)}"
    if isinstance(step, A.UntagStep):
        return f"untag {string(step.tag.value)}"
    if isinstance(step, A.SetField):
        return f"set {step.target} = {format_expr(step.value)}"
    if isinstance(step, A.ScoreStep):
        sign = "-" if step.delta < 0 else "+"
        return f"score {sign}{number(abs(step.delta))}"
    if isinstance(step, A.NoteStep):
        return f"note {string(step.text.value)}"
    if isinstance(step, A.TaskStep):
        due = f" due {duration(step.due)}" if step.due is not None else ""
        return f"task {string(step.text.value)} for {string(step.team.value)}{due}"
    if isinstance(step, A.NotifyStep):
        return f"notify {string(step.team.value)} {string(step.text.value)}"
    if isinstance(step, A.StartStep):
        return f"start {string(step.rule.value)}"
    if isinstance(step, A.StopStep):
        return "stop"
    if isinstance(step, A.PluginStep):
        return " ".join([step.keyword.text] + [atom(arg) for arg in step.args])
    if isinstance(step, A.If):
        return f"if {format_expr(step.branches[0].condition)} then"
    if isinstance(step, A.Split):
        return _split_head(step)
    raise TypeError(f"not a step: {step!r}")


def _split_head(step: A.Split) -> str:
    """``split``, or ``split auto on EVENT within DURATION`` for an auto-winner split."""
    if step.outcome is None or step.window is None:
        return "split"
    return f"split auto on {step.outcome.name} within {duration(step.window)}"


def _step(step: A.Step, indent: int, out: list[_Line]) -> None:
    line = step.span.line
    if isinstance(step, A.If):
        for number_, branch in enumerate(step.branches):
            word = "if" if number_ == 0 else "elif"
            out.append(
                _Line(indent, f"{word} {format_expr(branch.condition)} then", branch.span.line, closer=number_ > 0)
            )
            _block(branch.steps, indent + 1, out)
        if step.else_steps is not None:
            out.append(_Line(indent, "else", _line_of(step.else_span), closer=True))
            _block(step.else_steps, indent + 1, out)
        out.append(_Line(indent, "end", step.span.end_line, closer=True))
    elif isinstance(step, A.Split):
        out.append(_Line(indent, _split_head(step), line))
        for arm in step.arms:
            out.append(_Line(indent + 1, f"{arm.share}%:", arm.span.line))
            _block(arm.steps, indent + 2, out)
        out.append(_Line(indent, "end", step.span.end_line, closer=True))
    elif isinstance(step, A.WaitFor) and step.then_steps is not None:
        out.append(_Line(indent, step_text(step) + " then", line))
        _block(step.then_steps, indent + 1, out)
        if step.else_steps is not None:
            out.append(_Line(indent, "else", _line_of(step.else_span), closer=True))
            _block(step.else_steps, indent + 1, out)
        out.append(_Line(indent, "end", step.span.end_line, closer=True))
    else:
        out.append(_Line(indent, step_text(step), line))


# ---- comments -------------------------------------------------------------------


def _line_of(span: A.Span | None) -> int | None:
    return span.line if span is not None else None


def _belongs_before(comment: A.Comment, line: _Line) -> bool:
    if line.anchor is not None and comment.span.line < line.anchor:
        return True
    return comment.own_line and comment.span.column > 1 and comment.span.line < line.absorb_until


def _with_comments(lines: list[_Line], comments: Iterable[A.Comment]) -> str:
    # A trailing comment follows the last line printed for its source line.
    last_for_line = {
        line.anchor: index for index, line in enumerate(lines) if line.anchor is not None and not line.closer
    }
    attached: dict[int, str] = {}
    pending = []
    for comment in sorted(comments, key=lambda c: (c.span.line, c.span.column)):
        target = last_for_line.get(comment.span.line)
        if not comment.own_line and target is not None and target not in attached:
            attached[target] = comment.text
        else:
            pending.append(comment)
    out: list[str] = []
    position = 0
    for index, line in enumerate(lines):
        if line.blank:
            out.append("")
            continue
        if line.anchor is not None:
            indent = line.indent + (1 if line.closer else 0)
            while position < len(pending) and _belongs_before(pending[position], line):
                out.append(INDENT * indent + "#" + pending[position].text)
                position += 1
        text = INDENT * line.indent + line.text
        if index in attached:
            text += "  #" + attached[index]
        out.append(text)
    while position < len(pending):
        out.append("#" + pending[position].text)
        position += 1
    return "\n".join(out) + "\n" if out else ""
