"""Shared helpers for the language tests."""

from __future__ import annotations

import dsl


def parsed(text: str, filename: str = "rules.nudge") -> dsl.Program:
    """The program for ``text``; fails the test with the diagnostics if it does not parse."""
    result = dsl.parse(text, filename)
    assert result.program is not None, "\n".join(d.format(text) for d in result.diagnostics)
    return result.program


def diagnostics_text(text: str, vocabulary: dsl.Vocabulary | None = None,
                     filename: str = "rules.nudge") -> list[str]:
    """Every diagnostic for ``text`` (syntax, then checks) as ``line:col: message``."""
    result = dsl.parse(text, filename)
    found = list(result.diagnostics)
    if result.program is not None:
        found += dsl.check(result.program, vocabulary or vocab())
    return [f"{d.line}:{d.col}: {'' if d.is_error else 'warning: '}{d.message}" for d in found]


def vocab(**fields: str) -> dsl.Vocabulary:
    """The default vocabulary plus custom contact fields."""
    vocabulary = dsl.Vocabulary.default()
    extra = {"renewal_date": "date", "trial_ends": "date", "plan": "string", "vip": "bool",
             "tags_list": "list", "visits": "number", "meta": "any"}
    extra.update(fields)
    return vocabulary.with_fields(extra)
