"""Every ```nudge block in docs/language.md parses and checks without errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import dsl

from .helpers import vocab

DOC = Path(__file__).resolve().parents[2] / "docs" / "language.md"
BLOCKS = re.findall(r"^```nudge\n(.*?)^```", DOC.read_text(encoding="utf-8"), flags=re.M | re.S)
WORDS = vocab().with_functions(
    [  # what a plugin would declare for the examples
        dsl.Signature("domain", ("string",), "string"),
        dsl.Signature("lower", ("string",), "string"),
        dsl.Signature("days_until", ("date",), "number"),
        dsl.Signature("next_workday", ("date",), "date"),
    ]
)


def test_the_reference_has_examples():
    assert len(BLOCKS) >= 20


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_example_parses_and_checks(number):
    source = BLOCKS[number]
    built = dsl.build(source, f"language.md#{number}", WORDS)
    errors = [d.format(source) for d in built.diagnostics if d.is_error]
    assert not errors, "\n\n".join(errors)
    assert dsl.fmt(dsl.fmt(source)) == dsl.fmt(source)


@pytest.mark.parametrize(
    "title",
    [
        "Welcome series",
        "Trial follow-up 24 hours after a visit",
        "Birthday",
        "Win-back after 14 quiet days",
        "Renewal reminders, 7 days and 1 day before",
        "At-risk tagging",
        "Lead scoring with hand-off to sales",
    ],
)
def test_worked_programs_are_documented(title):
    assert f"### {title}\n\n```nudge\n" in DOC.read_text(encoding="utf-8")
