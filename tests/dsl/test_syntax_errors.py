"""Syntax errors: phrased for people, placed precisely, all of them, without cascades."""

from __future__ import annotations

import pytest

import dsl
from dsl import Diagnostic


def errors(text: str) -> list[str]:
    result = dsl.parse(text, "f.nudge")
    assert result.program is None
    return [f"{d.line}:{d.col}: {d.message}" for d in result.diagnostics]


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            'when form.submitted and tag != "vip"\n  send email welcome\n',
            "1:37: expected `then` after the condition, found the end of the line",
        ),
        ("when a.b\n  stop\n", "1:9: expected `then` after the trigger, found the end of the line"),
        ("when signup then stop", "1:6: an event name has a dot, like `form.submitted`"),
        ("when", "1:5: expected a trigger after `when`, found the end of the file"),
        ('rule "x"\nsend email a', "2:1: expected `when` after the rule's header, found `send`"),
        ("send email x", '1:1: a rule starts with `rule "Name"` or `when`'),
        ("once per contact\nwhen a.b then stop", '1:1: header lines go under `rule "Name"`'),
        ("when a.b then tag vip", "1:19: expected a quoted string, found `vip`"),
        ("when a.b then send email\n", "1:25: `send` needs a channel and a template name"),
        ("when a.b then wait 3 days", "1:20: expected a duration such as `3d`, found `3`"),
        ("when a.b and contact.x = 1 then stop", "1:24: `=` sets a field; to compare, write `==`"),
        ("when a.b then score 10", "1:21: `score` takes a signed number"),
        ("when a.b then set contact.x 1", "1:29: `set` needs `=` and a value"),
        ('when a.b then task "x"\n', "1:23: `task` needs a text and a team"),
        ("when every friday at 9 then stop", "1:22: expected a time such as `09:00`, found `9`"),
        ('when a.b then tag "x" tag "y"', "1:23: expected the end of the line, found `tag`"),
        ("wehn a.b then stop", "1:1: unexpected `wehn` — did you mean `when`?"),
        ('when a.b and contact.x contians "a" then stop', "1:24: unexpected `contians` — did you mean `contains`?"),
        ("when a.b and score > 3 then stop", "1:14: `score` alone is not a value"),
        ("when a.b and then stop", "1:14: expected a value or condition, found `then`"),
        ("when a.b then score +" + "9" * 20, "1:22: this number is too long"),
        ("when a.b and contact.x == " + "9" * 16 + " then stop", "1:27: this number is too long"),
        ("when a.b then wait " + "9" * 20 + "d", "1:20: this duration is too long"),
        ("when a.b and did c.d at least " + "9" * 16 + " times within 1d then stop", "1:31: this number is too long"),
        ("when a.b then\n  if contact.x > then\n    stop\n", "2:18: expected a value or condition, found `then`"),
        ("when a.b and contact.x in and true then stop", "1:27: expected a value or condition, found `and`"),
        ("when a.b then\n  if contact.x is set then\n    stop\n", "2:3: this `if` has no `end`"),
        ("when a.b then\n  split\n    50%: stop\n", "2:3: this `split` has no `end`"),
        ('when a.b then note "open', "1:20: this string is not closed"),
        ("when a.b then tag \u201cvip\u201d", "1:19: unexpected quote `\u201c`"),
        ("when a.b then stop @", "1:20: unexpected character `@`"),
    ],
)
def test_messages(text, expected):
    assert errors(text)[0] == expected


def test_every_error_in_a_file_is_reported_once():
    text = (
        'rule "A"\nwhen a.b then\n  tag vip\n  wait 3\n  send email\nend\n\n'
        'rule "B"\nwhen c.d and contact.x = 1 then\n  stop\nend\n\n'
        "when e.f then\n  if contact.y == then\n    stop\n  else\n    stop\n  end\n  stop 1\nend\n"
    )
    assert [e.split(":")[0] for e in errors(text)] == ["3", "4", "5", "9", "14", "19"]


def test_a_broken_block_header_does_not_unbalance_its_end():
    text = "when a.b then\n  if contact.x = 1 then\n    stop\n  else\n    stop\n  end\n  wait 1d\nend\n"
    assert errors(text) == ["2:16: `=` sets a field; to compare, write `==`"]


def test_a_misspelt_when_does_not_cascade_into_its_steps():
    assert errors("wehn a.b then\n  send email welcome\n  wait 3d\nend\n") == [
        "1:1: unexpected `wehn` — did you mean `when`?"
    ]


def test_errors_in_one_liners_resume_at_the_next_semicolon():
    assert errors("when a.b then send email; wait 3; tag vip") == [
        "1:25: `send` needs a channel and a template name",
        "1:32: expected a duration such as `3d`, found `3`",
        "1:39: expected a quoted string, found `vip`",
    ]


def test_messages_never_name_lark_terminals():
    text = 'when a.b then\n  ( ) ] [ , = + - : % ;\n  50% 09:00 2026-01-01 x.y "s" 3d\n'
    for diagnostic in dsl.parse(text).diagnostics:
        for name in (
            "LPAR",
            "RPAR",
            "LSQB",
            "RSQB",
            "COMMA",
            "EQUAL",
            "PLUS",
            "MINUS",
            "COLON",
            "PERCENT",
            "TIME",
            "DATE",
            "DOTTED",
            "STRING",
            "DURATION",
            "NAME",
            "_NL",
            "_SEMI",
            "$END",
            "__ANON",
        ):
            assert name not in diagnostic.message and name not in (diagnostic.hint or "")


def test_diagnostic_format_shows_line_caret_and_hint():
    diagnostic = Diagnostic(
        "error",
        "rules/welcome.nudge",
        3,
        3,
        'unknown step "sned" — did you mean "send"?',
        "steps are send, wait, …",
        end_col=7,
    )
    source = 'rule "Welcome"\nwhen a.b then\n  sned email welcome\nend\n'
    assert diagnostic.format(source) == (
        'rules/welcome.nudge:3:3: unknown step "sned" — did you mean "send"?\n'
        "  sned email welcome\n"
        "  ^~~~\n"
        "hint: steps are send, wait, …"
    )


def test_diagnostic_format_keeps_tabs_aligned_and_masks_control_characters():
    diagnostic = Diagnostic("warning", "f", 1, 4, "look here", None)
    assert diagnostic.format("\t\x00 x") == "f:1:4: warning: look here\n\t\ufffd x\n\t  ^"
    assert diagnostic.format(None) == "f:1:4: warning: look here"


@pytest.mark.parametrize(
    "step, word, keyword",
    [
        ("sned email welcome-y", "sned", "send"),
        ("sned email wèlcome", "sned", "send"),
        ("tga vip-x", "tga", "tag"),
        ('tga "vip" +', "tga", "tag"),
        ("wiat 3d + 1d", "wiat", "wait"),
        ("wiat 1h-30m", "wiat", "wait"),
        ('notfy sales-team "x"', "notfy", "notify"),
        ('notfy "team" "x" = 1', "notfy", "notify"),
        ("scroe +10", "scroe", "score"),
        ('untga "a" - "b"', "untga", "untag"),
    ],
)
def test_a_misspelt_step_is_named_at_its_word_whatever_follows_it(step: str, word: str, keyword: str):
    """`sned email welcome-y` was reported as "expected … found `-`" at the hyphen: the misspelt step made the rest
    of the line plugin arguments, which cannot hold a hyphen. The typo is what to fix."""
    message = f'unknown step "{word}" — did you mean "{keyword}"?'
    for text, line, col in (
        (f"when a.b then\n  {step}\nend\n", 2, 3),
        (f"when a.b then {step}", 1, 15),
        (f"when a.b then\n  if true then\n    {step}\n  end\nend\n", 3, 5),
        (f"when a.b then\n  stop; {step}\nend\n", 2, 9),
    ):
        found = dsl.parse(text, "f.nudge").diagnostics
        assert [(d.line, d.col, d.message) for d in found] == [(line, col, message)], text
        assert (found[0].end_col, found[0].replacement) == (col + len(word), keyword)
        assert found[0].hint and found[0].hint.startswith("steps are ")


def test_a_misspelt_step_reads_the_same_whether_or_not_the_line_parses():
    parses = dsl.build("when a.b then\n  sned email welcome\nend\n", "f.nudge").diagnostics
    broken = dsl.parse("when a.b then\n  sned email welcome-y\nend\n", "f.nudge").diagnostics
    assert [(d.line, d.col, d.message, d.replacement) for d in broken] == [
        (d.line, d.col, d.message, d.replacement) for d in parses
    ]


def test_a_plugin_step_close_to_a_built_in_one_keeps_its_syntax_error():
    """A plugin's step `sent` (or `tags`) on a broken line was called 'unknown step "sent" — did you mean "set"?':
    the parser did not know the plugins' steps. Given them (as saving rules does), the line's own error is named."""
    vocabulary = dsl.Vocabulary(channels={}, events=None, contact_fields={}, steps=frozenset({"sent", "tags"}))
    for text, expected in (
        ('when a.b then\n  sent "x" )\nend\n', "2:12: expected a value or condition or the end of the line, found `)`"),
        ("when a.b then\n  tags vip-x\nend\n", "2:11: expected a value or condition or the end of the line, found `-`"),
    ):
        found = dsl.build(text, "f.nudge", vocabulary).diagnostics
        assert [f"{d.line}:{d.col}: {d.message}" for d in found] == [expected], text
        assert dsl.parse(text, "f.nudge", steps=vocabulary.steps).diagnostics == found
    # not a plugin's: still the misspelt built-in step, with the fix
    found = dsl.build('when a.b then\n  sned "x" )\nend\n', "f.nudge", vocabulary).diagnostics
    assert [(d.message, d.replacement) for d in found] == [('unknown step "sned" — did you mean "send"?', "send")]


def test_a_broken_line_after_an_unknown_word_far_from_any_step_keeps_its_syntax_error():
    assert errors("when a.b then\n  crm_push deals-x\nend\n") == [
        "2:17: expected a value or condition or the end of the line, found `-`"
    ]


def test_a_character_stuck_to_a_step_word_is_named_rather_than_the_word():
    assert errors('when a.b then\n  untg\u0430 "x"\nend\n') == ["2:7: unexpected character `\u0430`"]
