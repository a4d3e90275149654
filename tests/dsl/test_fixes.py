"""Every "did you mean" carries its fix: the text that, put in place of the underlined span, makes that
problem go away (an editor offers it as a one-click fix). Printing is unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

import dsl

from .test_cases import SOURCES, VOCABULARY

TYPOS = [
    # (source, the fix's text) — one per place the parser or checker says "did you mean"
    ("wehn form.submitted then\n  send email welcome\nend\n", "when"),
    ('when form.submitted then\n  if contact.plan == "x" thne\n    stop\n  end\nend\n', "then"),
    ("when form.submited then\n  send email welcome\nend\n", "form.submitted"),
    ("when email.opend then\n  send email welcome\nend\n", "email.opened"),
    ("when form.submitted then\n  sned email welcome\nend\n", "send"),
    ("when form.submitted then\n  send emial welcome\nend\n", "email"),
    ("when form.submitted then\n  send email welcom\nend\n", "welcome"),
    ('when form.submitted and contact.frist_name == "a" then\n  stop\nend\n', "contact.first_name"),
    ('when form.submitted and in segment "vp" then\n  stop\nend\n', '"vip"'),
    ('when form.submitted then\n  start "Schedulde"\nend\n', '"Scheduled"'),
    ('when form.submitted and domian(contact.email) == "a" then\n  stop\nend\n', "domain"),
    ("when form.submitted and ture then\n  stop\nend\n", "true"),
]


def _diagnostics(source: str) -> list[dsl.Diagnostic]:
    result = dsl.parse(source, "typo.nudge")
    found = list(result.diagnostics)
    if result.program is not None:
        found += dsl.check(result.program, VOCABULARY)
    return found


def _apply(source: str, diagnostic: dsl.Diagnostic) -> str:
    lines = source.split("\n")
    line = lines[diagnostic.line - 1]
    lines[diagnostic.line - 1] = line[: diagnostic.col - 1] + diagnostic.replacement + line[diagnostic.end_col - 1 :]
    return "\n".join(lines)


@pytest.mark.parametrize("source,fix", TYPOS, ids=[fix for _source, fix in TYPOS])
def test_a_did_you_mean_carries_the_replacement_that_fixes_it(source, fix):
    found = [d for d in _diagnostics(source) if "did you mean" in d.message]
    assert len(found) == 1, found
    diagnostic = found[0]
    assert diagnostic.replacement == fix and diagnostic.end_col is not None
    fixed = _apply(source, diagnostic)
    assert not [d for d in _diagnostics(fixed) if d.is_error or "did you mean" in d.message], fixed


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_every_suggestion_in_the_language_cases_has_a_fix_and_only_suggestions_do(source: Path):
    text = source.read_text(encoding="utf-8")
    for diagnostic in _diagnostics(text):
        suggests = "did you mean" in diagnostic.message
        assert (diagnostic.replacement is not None) == (suggests and diagnostic.end_col is not None), diagnostic


def test_a_fix_does_not_change_what_is_printed():
    source = TYPOS[4][0]
    diagnostic = next(d for d in _diagnostics(source) if d.replacement)
    from dataclasses import replace

    assert diagnostic.format(source) == replace(diagnostic, replacement=None).format(source)
    assert diagnostic.format(source).splitlines()[0] == 'typo.nudge:2:3: unknown step "sned" — did you mean "send"?'


@pytest.mark.parametrize("text,fix", [('has tag "vip" and ture', "true"), ('domian(contact.email) == "a"', "domain")])
def test_a_bare_condition_carries_its_fix_too(text, fix):
    """A segment's text: the condition parser and checker give the same fixes as in a rule."""
    result = dsl.parse_condition(text, "segment", VOCABULARY)
    (diagnostic,) = result.diagnostics
    assert "did you mean" in diagnostic.message and diagnostic.replacement == fix
    fixed = text[: diagnostic.col - 1] + fix + text[diagnostic.end_col - 1 :]
    assert dsl.parse_condition(fixed, "segment", VOCABULARY).ok
