"""Every checker diagnostic tells the user what to do, quotes names briefly, and texts are never empty."""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import pytest

import dsl

from .helpers import vocab

DSL = Path(__file__).resolve().parents[2] / "dsl"


def diagnostics(text: str, vocabulary: dsl.Vocabulary | None = None) -> list[dsl.Diagnostic]:
    result = dsl.parse(text, "rules.nudge")
    assert result.program is not None, "\n".join(d.format(text) for d in result.diagnostics)
    return dsl.check(result.program, vocabulary or vocab())


def condition_diagnostics(condition: str) -> list[dsl.Diagnostic]:
    return diagnostics(f"when contact.created and {condition} then stop")


#: (rule text, a part of the message) for each error that used to come without a hint
HINTLESS_BEFORE = [
    ("when Contact.Created then stop", "event names are lowercase"),
    ("anniversary_field", "needs a contact field"),
    ("anniversary_kind", "needs a date field"),
    ('rule "R"\nonce per contact every 0d\nwhen contact.created then stop', "`every` needs a duration"),
    ("when contact.created then\n  wait 0m", "`wait` needs a duration"),
    ("when contact.created then\n  wait for email.clicked up to 0d", "`up to` needs a duration"),
    ('when contact.created then\n  tag " "', "a tag cannot be empty"),
    ('when contact.created then\n  untag "' + "t" * 200 + '"', "a tag has at most"),
    ("when contact.created then\n  set contact.created_at = now", "is read-only"),
    ('when contact.created then\n  set contact.score = "high"', "holds a number, not a string"),
    ("when contact.created then\n  score +0", "changes nothing"),
    ('when contact.created then\n  task "t" for "sales" due 0d', "`due` needs a duration"),
    ('when contact.created then\n  notify "' + "s" * 200 + '" "t"', "a team's name has at most"),
    ("when contact.created then\n  wait 99999d", "durations are limited to 100 years"),
    ("when no email.clicked for 0d then stop", "`for` needs a duration"),
    (
        "when contact.created then\n  split\n"
        + "".join(f"  {share}%: stop\n" for share in [4] * 25 + [0, 0])
        + "  end",
        "a split has at most",
    ),
    ("when contact.created then\n  split\n  100%: stop\n  0%: stop\n  end", "a split arm needs a share above 0%"),
]

HINTLESS_CONDITIONS_BEFORE = [
    ('contact.score matches "a"', "`matches` works on strings"),
    ('has tag ""', "a tag cannot be empty"),
    ("did email.clicked within 0d", "`within` needs a duration"),
    ("not contact.score", "`not` needs a condition"),
    ("contact.vip < true", "cannot order"),
    ("did email.clicked at least 0 times within 1d", "`at least` needs a whole number"),
    ('contact.score contains "a"', "`contains` needs a string or a list"),
    ("contact.email contains 3", "a string can only contain a string"),
    ("contact.score starts with 3", "works on strings"),
    ('contact.score in ["a"]', "this list item is a string"),
]

SPECIAL = {
    "anniversary_field": "when anniversary of event.date then stop",
    "anniversary_kind": "when anniversary of contact.email then stop",
}


@pytest.mark.parametrize(("text", "wording"), HINTLESS_BEFORE, ids=[w for _, w in HINTLESS_BEFORE])
def test_every_checker_error_has_a_hint(text: str, wording: str):
    found = [d for d in diagnostics(SPECIAL.get(text, text)) if wording in d.message]
    assert found, f"no diagnostic says {wording!r}"
    for diagnostic in found:
        assert diagnostic.hint and diagnostic.hint.strip(), diagnostic.format()


@pytest.mark.parametrize(
    ("condition", "wording"), HINTLESS_CONDITIONS_BEFORE, ids=[w for _, w in HINTLESS_CONDITIONS_BEFORE]
)
def test_every_condition_error_has_a_hint(condition: str, wording: str):
    found = [d for d in condition_diagnostics(condition) if wording in d.message]
    assert found, f"no diagnostic says {wording!r}"
    for diagnostic in found:
        assert diagnostic.hint and diagnostic.hint.strip(), diagnostic.format()


def _report_calls_without_hint(path: Path) -> list[str]:
    """``….error(node, message)`` / ``….warning(node, message)`` calls that pass no hint."""
    missing = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in ("error", "warning") or "report" not in ast.unparse(node.func.value):
            continue
        passed = len(node.args) >= 3 or any(isinstance(a, ast.Starred) for a in node.args)
        if not passed and not any(k.arg == "hint" for k in node.keywords):
            missing.append(f"{path.name}:{node.lineno}")
    return missing


def test_no_checker_diagnostic_is_reported_without_a_hint():
    """A future error added without a hint fails here, even before a test reaches it."""
    missing = [where for path in sorted(DSL.glob("*.py")) for where in _report_calls_without_hint(path)]
    assert missing == []


# ---- `score -0` --------------------------------------------------------------


@pytest.mark.parametrize(("step", "shown"), [("score -0", "`score -0`"), ("score +0", "`score +0`")])
def test_a_zero_score_is_worded_with_the_users_sign(step: str, shown: str):
    found = diagnostics(f"when contact.created then\n  {step}")
    assert [d.message for d in found] == [f"{shown} changes nothing"]
    assert not found[0].is_error


# ---- empty texts ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "col", "what"),
    [
        ('note ""', 8, "a note"),
        ('note "   "', 8, "a note"),
        ('task "" for "sales"', 8, "a task"),
        ('task " \\t " for "sales" due 1d', 8, "a task"),
        ('notify "sales" ""', 18, "a notification"),
        ('notify "sales" "  "', 18, "a notification"),
    ],
)
def test_empty_texts_are_refused_where_they_are_written(step: str, col: int, what: str):
    found = [d for d in diagnostics(f"when contact.created then\n  {step}") if d.is_error]
    assert [(d.line, d.col, d.message) for d in found] == [(2, col, f"{what}'s text cannot be empty")]
    assert found[0].hint


def test_texts_with_words_are_accepted():
    text = 'when contact.created then\n  note "n"\n  task "t" for "sales"\n  notify "sales" "x"'
    assert [d for d in diagnostics(text) if d.is_error] == []


# ---- control characters in tags and teams ------------------------------------


@pytest.mark.parametrize(
    "step",
    [
        'tag "a\\nb"',
        'untag "a\\tb"',
        'tag "a\x7fb"',
        'tag "\x00"',
        'if has tag "a\\nb" then\n  stop\n  end',
        'if tag != "a\\tb" then\n  stop\n  end',
    ],
)
def test_tags_with_control_characters_are_refused(step: str):
    found = [d for d in diagnostics(f"when contact.created then\n  {step}") if d.is_error]
    assert [(d.line, d.col) for d in found] == [(2, step.index('"') + 3)]
    assert "control character" in found[0].message
    assert found[0].hint


@pytest.mark.parametrize("step", ['task "t" for "sa\\nles"', 'notify "sa\\tles" "x"'])
def test_teams_with_control_characters_are_refused(step: str):
    found = [d for d in diagnostics(f"when contact.created then\n  {step}") if d.is_error]
    assert len(found) == 1 and "control character" in found[0].message and found[0].hint


# ---- long names in messages ------------------------------------------------------


def test_shorten_keeps_short_names_and_cuts_long_ones():
    from dsl.diagnostics import shorten

    assert shorten("welcome") == "welcome"
    assert shorten("a" * 60) == "a" * 60
    assert shorten("a" * 61) == "a" * 60 + "…"


LONG = "x" * 100_000
NAME = "n" * 200  # under the longest rule name, so the duplicate is what is reported
KNOWN = replace(
    vocab(),
    channels={**vocab().channels, "email": frozenset({"welcome"})},
    rules=frozenset({"Other"}),
    segments=frozenset({"vip"}),
)


@pytest.mark.parametrize(
    "text",
    [
        f'rule "{NAME}"\nwhen contact.created then stop\nrule "{NAME}"\nwhen contact.created then stop',
        f'rule "{LONG}"\nwhen contact.created then stop',
        f'when contact.created then\n  start "{LONG}"',
        f"when contact.created then\n  send email {LONG}",
        f"when contact.created then\n  send {LONG} welcome",
        f"when contact.created then\n  {LONG}",
        f'when contact.created and in segment "{LONG}" then stop',
        f"when contact.created and {LONG}(1) then stop",
        f"when contact.created and contact.{LONG} then stop",
        f"when every 1d and event.{LONG} then stop",
        f"when contact.created and custom.{LONG} then stop",
        f"when email.{LONG} then stop",
        f"when contact.{LONG.upper()} then stop",
        f"when contact.created then\n  set other.{LONG} = 1",
        f'rule "R"\npriority {LONG}\nwhen contact.created then stop',
    ],
)
def test_long_names_are_shortened_in_messages(text: str):
    found = diagnostics(text, KNOWN)
    assert found
    for diagnostic in found:
        assert len(diagnostic.message) < 200, diagnostic.message[:300]
        assert len(diagnostic.hint or "") < 1000, (diagnostic.hint or "")[:200]


def test_a_long_bare_word_is_shortened_in_the_syntax_error():
    text = f"when contact.created and {LONG} == 1 then stop"
    (diagnostic,) = dsl.parse(text, "rules.nudge").diagnostics
    assert "alone is not a value" in diagnostic.message
    assert len(diagnostic.message) < 200 and len(diagnostic.hint or "") < 400


@pytest.mark.parametrize(
    "name, control",
    [("Wel\\ncome", "U+000A"), ("Wel\\tcome", "U+0009"), ("Wel\x7fcome", "U+007F"), ("Wel\u2028come", "U+2028")],
)
def test_rule_names_with_control_characters_are_refused(name: str, control: str):
    """A rule's name is shown on one line everywhere (lists, logs, `start "…"`): a line break in it passed."""
    found = [d for d in diagnostics(f'rule "{name}"\nwhen contact.created then\n  stop\nend\n') if d.is_error]
    assert [(d.line, d.col, d.end_col, d.message) for d in found] == [
        (1, 6, 8 + len(name), f"a rule's name cannot contain a line break or control character ({control})")
    ]
    assert found[0].hint
