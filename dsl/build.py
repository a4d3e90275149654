"""Parse, check and compile in one call: what saving a rules file does."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import ast as A
from .checker import check
from .compiler import compile_program
from .diagnostics import Diagnostic, has_errors
from .parser import parse
from .vocabulary import Vocabulary


@dataclass(frozen=True)
class BuildResult:
    """A program and its plan (both None when there is an error) and every diagnostic."""

    program: A.Program | None
    plan: dict[str, Any] | None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.plan is not None


def build(text: str, filename: str = "<input>", vocabulary: Vocabulary | None = None) -> BuildResult:
    """Parse, check against ``vocabulary`` and compile ``text``.

    :return: the plan when there is no error (warnings allowed), and all diagnostics.
    """
    parsed = parse(text, filename)
    if parsed.program is None:
        return BuildResult(None, None, parsed.diagnostics)
    diagnostics = check(parsed.program, vocabulary)
    if has_errors(diagnostics):
        return BuildResult(parsed.program, None, diagnostics)
    return BuildResult(parsed.program, compile_program(parsed.program), diagnostics)
