"""Regular expressions for ``matches``, refused when they could take exponential time.

Python's ``re`` cannot be interrupted, so a pattern like ``(a+)+$`` on a long
input would stall a worker. Such patterns are rejected when the rule is
checked (and, in case an unchecked plan arrives, again before evaluation):
a repeat inside a repeat, or a repeated alternation whose branches may
overlap, is refused. Subjects are also cut to :data:`MAX_SUBJECT` characters.
"""

from __future__ import annotations

import functools
import re

try:  # the parser behind `re`; private, but stable since Python 3.11
    from re import _constants as sre_constants  # type: ignore[attr-defined]
    from re import _parser as sre_parser  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - older or other Pythons
    sre_parser = sre_constants = None

MAX_PATTERN = 500
MAX_SUBJECT = 10_000


def problem(pattern: str) -> str | None:
    """Why ``pattern`` may not be used, or None when it is fine."""
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
    except Exception:  # noqa: BLE001 - any failure here means "do not trust it"
        return "the pattern is not a valid regular expression"
    if _nested_repeat(parsed):
        return ("the pattern repeats a repetition or a choice (like `(a+)+` or `(a|aa)*`), "
                "which can take exponential time")
    return None


@functools.lru_cache(maxsize=512)
def compile_safe(pattern: str) -> re.Pattern | None:
    """The compiled pattern, or None if :func:`problem` refuses it."""
    if problem(pattern) is not None:
        return None
    return re.compile(pattern)


def search(pattern: str, subject: str) -> bool | None:
    """``re.search`` on the first :data:`MAX_SUBJECT` characters; None for a refused pattern."""
    compiled = compile_safe(pattern)
    if compiled is None:
        return None
    return compiled.search(subject[:MAX_SUBJECT]) is not None


_REPEATS = ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")


def _is_repeat(op) -> bool:
    return str(op) in _REPEATS


def _unbounded_or_large(max_count) -> bool:
    return max_count is sre_constants.MAXREPEAT or max_count > 10


def _nested_repeat(parsed) -> bool:
    """True if a repeated sub-pattern itself repeats or alternates (iterative walk)."""
    stack = [(parsed, False)]
    while stack:
        items, inside_repeat = stack.pop()
        for op, value in items:
            name = str(op)
            if _is_repeat(op):
                low, high, sub = value
                repeating = _unbounded_or_large(high)
                if inside_repeat and repeating:
                    return True
                if repeating and _has_branch(sub):
                    return True
                stack.append((sub, inside_repeat or repeating))
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


def _has_branch(items) -> bool:
    stack = [items]
    while stack:
        for op, value in stack.pop():
            name = str(op)
            if name == "BRANCH":
                return True
            if name == "SUBPATTERN":
                stack.append(value[-1])
    return False
