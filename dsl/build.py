"""Parse, check and compile in one call: what saving a rules file (or a segment) does."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import ast as A
from .checker import check, check_condition
from .compiler import compile_program
from .condition_tree import CompileError, tree
from .diagnostics import ERROR, Diagnostic, at, has_errors
from .parser import parse, parse_expression
from .plan import ProgramPlan
from .vocabulary import Vocabulary


@dataclass(frozen=True)
class BuildResult:
    """A program and its plan (both None when there is an error) and every diagnostic."""

    program: A.Program | None
    plan: ProgramPlan | None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.plan is not None


def build(text: str, filename: str = "<input>", vocabulary: Vocabulary | None = None) -> BuildResult:
    """Parse, check against ``vocabulary`` and compile ``text``.

    :return: the plan when there is no error (warnings allowed), and all diagnostics.
    """
    parsed = parse(text, filename, vocabulary.steps if vocabulary is not None else ())
    if parsed.program is None:
        return BuildResult(None, None, parsed.diagnostics)
    diagnostics = check(parsed.program, vocabulary)
    if has_errors(diagnostics):
        return BuildResult(parsed.program, None, diagnostics)
    return BuildResult(parsed.program, compile_program(parsed.program), diagnostics)


@dataclass(frozen=True)
class ConditionResult:
    """A bare condition, its condition tree (docs/plan.md; both None when there is an error) and diagnostics."""

    condition: A.Node | None
    tree: Any
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.condition is not None


def parse_condition(
    text: str, filename: str = "<condition>", vocabulary: Vocabulary | None = None, *, sql_dialect: str | None = None
) -> ConditionResult:
    """Parse, check and compile a bare condition: a segment's text, as written after ``when … and``.

    Diagnostics point into ``text`` itself (its own lines and columns); ``event.…`` has no event
    to refer to.

    :param sql_dialect: the database the condition will run on as SQL (``sqlite``, ``postgresql``):
        a call of a function without an SQL form for it is then an error.
    :return: the condition and its tree when there is no error (warnings allowed), and all diagnostics.
    """
    condition, diagnostics = parse_expression(text, filename)
    if condition is None:
        return ConditionResult(None, None, diagnostics)
    diagnostics = check_condition(condition, vocabulary, filename, sql_dialect=sql_dialect)
    if has_errors(diagnostics):
        return ConditionResult(None, None, diagnostics)
    try:
        compiled = tree(condition)
    except CompileError as error:
        hint = 'a segment tests fields, tags and events, e.g. `contact.score > 10 and tag == "vip"`'
        return ConditionResult(None, None, [*diagnostics, at(ERROR, filename, condition.span, str(error), hint)])
    return ConditionResult(condition, compiled, diagnostics)
