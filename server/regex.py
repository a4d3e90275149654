"""``matches`` in rules and segments runs on RE2: time linear in the subject, whatever the pattern.

Python's ``re`` backtracks: ``a*a*a*a*a*a*b`` against sixty ``a`` held a worker for seconds, and
it cannot be interrupted. RE2 (the ``google-re2`` package) never backtracks. It does not run
lookaround, backreferences, possessive quantifiers, atomic groups, ``\\Z`` or repetition counts
above 1000; the checker refuses those with the reason, since it asks this same engine.

SQL never runs a pattern: SQLite has no ``REGEXP`` and PostgreSQL's ``~`` backtracks, so a
segment condition with ``matches`` is evaluated here, in Python, contact by contact
(:mod:`server.sqlwhere` raises ``Unsupported`` for it).
"""

from __future__ import annotations

import functools
import re
from typing import Any

import re2

from dsl import safe_regex

#: RE2's time is linear in the subject times the compiled program's size: ``\\w{1000}`` five times over (41
#: characters) compiles to 15,000 instructions and took 0.8 s on a 10,000-character subject, per contact. Patterns
#: compiling to more are refused; 2,000 runs such a subject in ~0.1 s and leaves ``\\d{1000}`` usable.
MAX_PROGRAM = 2_000
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # errors come back as exceptions; RE2 must not also print them
#: RE2's error text → what the pattern used that RE2 does not run
_UNSUPPORTED = (
    (re.compile(r"invalid perl operator: \(\?<?[=!]"), "lookahead or lookbehind (`(?=…)`, `(?!…)`, `(?<=…)`)"),
    (re.compile(r"invalid perl operator: \(\?>"), "an atomic group `(?>…)`"),
    (re.compile(r"invalid perl operator: \(\?P="), "a named backreference `(?P=name)`"),
    (re.compile(r"invalid escape sequence: \\[1-9]"), "a backreference like `\\1`"),
    (re.compile(r"invalid escape sequence: \\Z"), "`\\Z` (write `\\z`, or `$`)"),
    (re.compile(r"bad repetition operator: [*+?}]\+"), "a possessive quantifier like `*+`"),
    (re.compile(r"invalid repetition size"), "a repetition count above 1000"),
)


def _reason(error: Exception) -> str:
    text = error.args[0] if error.args else str(error)
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


@functools.lru_cache(maxsize=512)
def _compiled(pattern: str) -> Any:
    """The compiled pattern, or the RE2 error text (cached either way)."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as error:
        return _reason(error)


class Re2Engine:
    """The engine Nudge installs into ``dsl``: checking and searching with RE2."""

    name = "RE2"

    def problem(self, pattern: str) -> str | None:
        if len(pattern) > safe_regex.MAX_PATTERN:
            return f"the pattern is longer than {safe_regex.MAX_PATTERN} characters"
        compiled = _compiled(pattern)
        if not isinstance(compiled, str):
            if compiled.programsize <= MAX_PROGRAM:
                return None
            return (
                f"the pattern compiles to {compiled.programsize:,} steps, more than {MAX_PROGRAM:,}, and would be slow "
                "on every contact: use smaller repetition counts (`\\w+` instead of `\\w{1000}`)"
            )
        try:
            re.compile(pattern)
        except (re.error, RecursionError, OverflowError, ValueError):
            return f"the pattern is not a valid regular expression ({compiled})"
        used = next((what for test, what in _UNSUPPORTED if test.search(compiled)), compiled)
        return f"the pattern uses {used}, which Nudge's linear-time engine (RE2) does not run"

    def search(self, pattern: str, subject: str) -> bool | None:
        compiled = _compiled(pattern)
        if isinstance(compiled, str) or compiled.programsize > MAX_PROGRAM:
            return None
        try:
            return compiled.search(subject) is not None
        except UnicodeEncodeError:  # a lone surrogate stored before input was checked for them
            return compiled.search(subject.encode("utf-8", "replace").decode("utf-8")) is not None


def install() -> None:
    """Make RE2 the engine of ``matches`` for the checker and the evaluator."""
    safe_regex.install(Re2Engine())


__all__ = ["Re2Engine", "install"]
