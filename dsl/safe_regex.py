"""Regular expressions for ``matches``: run by the engine the host installs, checked by the same engine.

``dsl`` is pure, so it cannot bring a linear-time engine of its own. The host installs one with
:func:`install` (Nudge's server installs RE2 on import, see :mod:`server.regex`); the checker asks
it whether a pattern can run (:func:`problem`) and the evaluator searches with it (:func:`search`),
so a pattern the checker accepted is one the runtime runs.

Without a host engine (``dsl`` used on its own), patterns run on Python's backtracking ``re``:
then a repeat inside a repeat, or a repeated alternation, is refused and subjects are cut to
:data:`MAX_SUBJECT` characters, which keeps the worst cases away but is no guarantee.
"""

from __future__ import annotations

import functools
import importlib
import re
from typing import Any, Protocol


def _private(name: str) -> Any:
    """A private module of ``re`` (untyped on purpose: its parse trees are internal), or None."""
    try:
        return importlib.import_module(f"re.{name}")
    except ImportError:  # pragma: no cover - older or other Pythons
        return None


# the parser behind `re`; private, but stable since Python 3.11
sre_parser = _private("_parser")
sre_constants = _private("_constants")

MAX_PATTERN = 500
MAX_SUBJECT = 10_000


class Engine(Protocol):
    """A regular-expression engine for ``matches``."""

    #: shown in messages ("RE2")
    name: str

    def problem(self, pattern: str) -> str | None:
        """Why *pattern* cannot be used, or None when it can."""

    def search(self, pattern: str, subject: str) -> bool | None:
        """Whether *pattern* occurs anywhere in *subject*; None for a pattern it refuses."""


class Backtracking:
    """Python's ``re``, with the patterns known to backtrack badly refused (the fallback)."""

    name = "Python re"

    def problem(self, pattern: str) -> str | None:
        if len(pattern) > MAX_PATTERN:
            return f"the pattern is longer than {MAX_PATTERN} characters"
        try:
            re.compile(pattern)
        except re.error as error:
            return f"the pattern is not a valid regular expression ({error})"
        except (RecursionError, OverflowError, ValueError):
            return "the pattern is not a valid regular expression"
        if sre_parser is None:
            return None
        try:
            parsed = sre_parser.parse(pattern)
        except Exception:
            return "the pattern is not a valid regular expression"
        if _nested_repeat(parsed):
            return (
                "the pattern repeats a repetition or a choice (like `(a+)+` or `(a|aa)*`), "
                "which can take exponential time"
            )
        return None

    def search(self, pattern: str, subject: str) -> bool | None:
        compiled = _compile_checked(pattern)
        if compiled is None:
            return None
        return compiled.search(subject[:MAX_SUBJECT]) is not None


@functools.lru_cache(maxsize=512)
def _compile_checked(pattern: str) -> re.Pattern[str] | None:
    if Backtracking().problem(pattern) is not None:
        return None
    return re.compile(pattern)


_engine: Engine = Backtracking()


def install(engine: Engine) -> None:
    """Make *engine* the one the checker and the evaluator use (the host calls this once, at import)."""
    global _engine
    _engine = engine


def engine() -> Engine:
    """The engine in use."""
    return _engine


def problem(pattern: str) -> str | None:
    """Why ``pattern`` may not be used with the installed engine, or None when it is fine."""
    return _engine.problem(pattern)


def search(pattern: str, subject: str) -> bool | None:
    """Search *subject* with the installed engine; None for a refused pattern."""
    return _engine.search(pattern, subject)


_REPEATS = ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")


def _is_repeat(op: object) -> bool:
    return str(op) in _REPEATS


def _unbounded_or_large(max_count: Any) -> bool:
    return max_count is sre_constants.MAXREPEAT or max_count > 10


def _nested_repeat(parsed: Any) -> bool:
    """True if a repeated sub-pattern itself repeats or alternates (iterative walk)."""
    stack: list[tuple[Any, bool]] = [(parsed, False)]
    while stack:
        items, inside_repeat = stack.pop()
        for op, value in items:
            name = str(op)
            if _is_repeat(op):
                _low, high, sub = value
                repeating = _unbounded_or_large(high)
                if inside_repeat and repeating:
                    return True
                if repeating and _has_branch(sub):
                    return True
                # a few repeats of a repetition multiply too: `(.*a){10}x` tries n**10 ways
                stack.append((sub, inside_repeat or repeating or high > 1))
            elif name == "SUBPATTERN":
                stack.append((value[-1], inside_repeat))
            elif name == "BRANCH":
                for branch in value[1]:
                    stack.append((branch, inside_repeat))
            elif name in ("ASSERT", "ASSERT_NOT"):
                stack.append((value[1], inside_repeat))
            elif name == "GROUPREF_EXISTS":
                for sub in value[1:]:
                    if sub is not None:
                        stack.append((sub, inside_repeat))
    return False


def _has_branch(items: Any) -> bool:
    stack: list[Any] = [items]
    while stack:
        for op, value in stack.pop():
            name = str(op)
            if name == "BRANCH":
                return True
            if name == "SUBPATTERN":
                stack.append(value[-1])
    return False
