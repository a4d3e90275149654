"""Bad input gives clean diagnostics, in bounded time, never a traceback."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dsl
from dsl.parser import MAX_ERRORS, lark_parser

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TOKENS = [
    "rule",
    '"Name"',
    "when",
    "then",
    "end",
    "if",
    "elif",
    "else",
    "and",
    "or",
    "not",
    "wait",
    "for",
    "up",
    "to",
    "until",
    "send",
    "email",
    "welcome",
    "tag",
    '"vip"',
    "split",
    "50%",
    ":",
    "did",
    "within",
    "3d",
    "09:00",
    "2026-12-31",
    "contact.email",
    "event.x",
    "form.submitted",
    "==",
    "!=",
    "<",
    "=",
    "(",
    ")",
    "[",
    "]",
    ",",
    ";",
    "\n",
    "\n",
    "#c\n",
    "every",
    "day",
    "at",
    "no",
    "anniversary",
    "of",
    "before",
    "after",
    "score",
    "+",
    "-",
    "10",
    "is",
    "set",
    "in",
    "segment",
    "has",
    "matches",
    "contains",
    "starts",
    "with",
    "note",
    "task",
    "notify",
    "start",
    "stop",
    "once",
    "per",
    "contact",
    "always",
    "quiet",
    "hours",
    "where",
    "at",
    "least",
    "times",
    "now",
    "today",
    "null",
    "true",
    '"',
    "\x00",
    "@",
]


def _lark_names() -> set[str]:
    return {t.name for t in lark_parser().terminals} | {"$END", "__ANON"}


LARK_NAMES = None


def assert_clean(result: dsl.ParseResult, text: str) -> None:
    """Diagnostics are well-formed, render, and never mention lark's terminal names."""
    global LARK_NAMES
    LARK_NAMES = LARK_NAMES or _lark_names()
    assert isinstance(result, dsl.ParseResult)
    assert (result.program is None) == bool(result.diagnostics)
    assert len(result.diagnostics) <= MAX_ERRORS + 1
    for diagnostic in result.diagnostics:
        assert diagnostic.line >= 1 and diagnostic.col >= 1, diagnostic
        rendered = diagnostic.format(text)
        words = set(re.findall(r"[A-Za-z_$][A-Za-z0-9_]*", diagnostic.message + " " + (diagnostic.hint or "")))
        assert not words & LARK_NAMES, (words & LARK_NAMES, rendered)
        assert rendered.startswith(f"{diagnostic.file}:{diagnostic.line}:{diagnostic.col}: ")


def everything(text: str) -> dsl.ParseResult:
    """Parse; if that works, check, format and compile too: none of it may raise."""
    result = dsl.parse(text, "fuzz.nudge")
    assert_clean(result, text)
    if result.program is not None:
        dsl.check(result.program)
        assert dsl.parse(dsl.format_program(result.program), "fuzz.nudge").program == result.program
        built = dsl.build(text, "fuzz.nudge", dsl.Vocabulary(channels={}, events=None, contact_fields={}))
        assert (built.plan is None) == any(d.is_error for d in built.diagnostics)
    return result


@FUZZ
@given(st.text(max_size=300))
def test_random_text(text):
    everything(text)


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=60).map(" ".join))
def test_token_soup(text):
    everything(text)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(data):
    result = dsl.parse_bytes(data, "fuzz.nudge")
    assert_clean(result, data.decode("utf-8", errors="replace"))


DEEP = 10_000


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "text, expected",
    [
        ("when a.b then\n" + "if true then\n" * DEEP + "end\n" * DEEP, "nests too deeply"),
        ("when a.b and " + "(" * DEEP + "true" + ")" * DEEP + " then stop", "nests too deeply"),
        ("when a.b and " + "not " * DEEP + "true then stop", "nests too deeply"),
        ("when a.b and contact.x == " + " + ".join(["1"] * DEEP) + " then stop", "nests too deeply"),
        ("when a.b and contact.x in " + "[" * DEEP + "]" * DEEP + " then stop", "nests too deeply"),
        ("when a.b then\n" + "split 100%:\n" * DEEP + "end\n" * DEEP, "nests too deeply"),
        ("when a.b then\n" + "wait for c.d up to 1d then\n" * DEEP + "end\n" * DEEP, "nests too deeply"),
        ("when a.b then\n" + "if true then\n" * DEEP, "nests too deeply"),
        ("(" * DEEP, "a rule starts with"),
    ],
    ids=["if", "parentheses", "not", "sum", "lists", "split", "wait-for", "unclosed-if", "bare-parens"],
)
def test_ten_thousand_deep_nesting_is_a_clean_error(text, expected):
    result = dsl.parse(text)
    assert_clean(result, text)
    assert result.program is None
    assert any(expected in d.message for d in result.diagnostics), result.diagnostics


@pytest.mark.timeout(60)
def test_long_flat_chains_are_fine():
    long = 3_000
    conditions = " and ".join(f"contact.score > {i}" for i in range(long))
    steps = "\n".join(f'  tag "t{i}"' for i in range(long))
    text = f"when a.b and {conditions} then\n{steps}\nend"
    result = dsl.parse(text)
    assert result.program is not None
    (rule,) = result.program.rules
    assert len(rule.condition.items) == long and len(rule.steps) == long
    plan = dsl.compile_program(result.program)
    assert len(plan["rules"][0]["steps"]) == long + 1
    assert dsl.fmt(dsl.format_program(result.program)).count("\n") == long + 2


def test_moderate_nesting_is_allowed():
    text = "when a.b then\n" + "if true then\n" * 20 + "stop\n" + "end\n" * 20
    assert dsl.parse(text).program is not None


@pytest.mark.parametrize(
    "text, accepted",
    [
        ("\x00", False),
        ('when a.b then\x00 tag "x"', False),
        ("\x00\x00\x00when\x00a.b", False),
        ('when a.b then tag "x\x00y"', True),
        ('when a.b then # \x00 in a comment\n tag "x"', True),
    ],
)
def test_nul_bytes(text, accepted):
    result = everything(text)
    assert (result.program is not None) is accepted
    if not accepted:
        assert any("U+0000" in d.message for d in result.diagnostics)


def test_nul_inside_a_string_is_kept():
    result = dsl.parse('when a.b then tag "x\x00y"')
    assert result.program.rules[0].steps[0].tag.value == "x\x00y"


@pytest.mark.parametrize(
    "text, where",
    [
        ('when a.b then\n  tag "a\ud800b"\n', (2, 9)),
        ('rule "\udc80"\nwhen a.b then stop\n', (1, 7)),
        ('when a.b and contact.email matches "\ud800" then stop\n', (1, 37)),
        ("when a.b then stop  # \udfff\n", (1, 23)),
        ("when a.b then\n  \ud83d stop\n", (2, 3)),
    ],
    ids=["text", "rule-name", "pattern", "comment", "code"],
)
def test_lone_surrogates_are_refused_where_they_are(text, where):
    # a str from JSON may hold them (`"\ud800"`); no file can, and hashing or RE2 cannot encode them
    built = dsl.build(text, "s.nudge")
    assert_clean(dsl.parse(text, "s.nudge"), text)
    assert built.plan is None
    first = built.diagnostics[0]
    assert (first.line, first.col) == where
    assert "surrogate" in first.message and first.hint


def test_a_lone_surrogate_in_a_bare_condition_is_refused():
    result = dsl.parse_condition('contact.email == "x" or\n  contact.email matches "\ud800"')
    assert result.condition is None
    assert [(d.line, d.col) for d in result.diagnostics] == [(2, 26)]


@pytest.mark.parametrize(
    "text, where",
    [
        # old Mac line ends: the comment would run to the end of the file and swallow every step
        ('when a.b then  # greet\r  send email welcome\r  tag "x"\r', (1, 23)),
        ('rule "x"\r  once per contact\rwhen a.b then\r  stop\r', (1, 9)),
        ('when a.b then\r\n  tag "x"\r\r\n', (2, 10)),
    ],
)
def test_a_lone_carriage_return_is_refused_once(text, where):
    result = dsl.parse(text, "cr.nudge")
    assert_clean(result, text)
    assert [(d.line, d.col) for d in result.diagnostics] == [where]
    assert "carriage return" in result.diagnostics[0].message
    assert dsl.parse_condition("contact.score > 1 # c\r or true").condition is None


def test_crlf_line_ends_are_fine():
    text = 'rule "x"\r\n  once per contact\r\nwhen a.b then  # greet\r\n  tag "x"\r\n  stop\r\nend\r\n'
    result = dsl.parse(text, "crlf.nudge")
    assert result.program is not None
    assert len(result.program.rules[0].steps) == 2
    assert dsl.parse_condition("contact.score > 1 # c\r\n or true").condition is not None


def test_invalid_utf8_is_reported_with_line_and_column():
    data = 'when a.b then\n  tag "caf\u00e9"\n  note "x'.encode() + b"\xff\xfe" + b'"\nend\n'
    result = dsl.parse_bytes(data, "bad.nudge")
    assert result.program is None
    first = result.diagnostics[0]
    assert (first.file, first.line, first.col) == ("bad.nudge", 3, 10)
    assert "UTF-8" in first.message and "0xff" in first.message
    assert first.hint


def test_truncated_utf8_at_the_end_of_the_file():
    result = dsl.parse_bytes('when a.b then tag "\u00e9"\n'.encode()[:-3] + b"\xc3", "t.nudge")
    assert result.program is None
    assert any("UTF-8" in d.message for d in result.diagnostics)


def test_valid_utf8_bytes_parse_like_text():
    text = 'when a.b then note "Grüße {{ contact.first_name }} 👋"'
    assert dsl.parse_bytes(text.encode(), "x").program == dsl.parse(text, "x").program


def test_errors_are_capped():
    text = "when a.b then\n" + "  tag vip\n" * 500
    result = dsl.parse(text)
    assert len(result.diagnostics) == MAX_ERRORS + 1
    assert "too many" in result.diagnostics[-1].message


MEGABYTE = 1 << 20


def _valid_megabyte() -> str:
    block = (
        'rule "R{n}"\n  once per contact\nwhen form.submitted and event.kind == "trial" then\n'
        "  send email welcome\n  wait 3d\n  if did class.attended within 3d then\n"
        "    send email keep_going\n  else\n    send email getting_started\n  end\nend\n\n"
    )
    parts, size, n = [], 0, 0
    while size < MEGABYTE:
        part = block.replace("{n}", str(n))
        parts.append(part)
        size += len(part)
        n += 1
    return "".join(parts)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_megabyte_of_rules_parses_checks_and_compiles():
    text = _valid_megabyte()
    built = dsl.build(text, "big.nudge", dsl.Vocabulary(channels={"email": None}, events=None, contact_fields={}))
    assert built.plan is not None, built.diagnostics[:3]
    assert len(built.plan["rules"]) > 3000


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["garbage-lines", "one-line", "garbage-bytes", "many-errors"])
def test_a_megabyte_of_bad_input(kind):
    rng = random.Random(kind)
    if kind == "garbage-lines":
        text = "\n".join("".join(rng.choice('abc ()[]"=#@;:%09.') for _ in range(60)) for _ in range(MEGABYTE // 61))
    elif kind == "one-line":
        text = "when a.b then " + 'tag "x" ' * (MEGABYTE // 8)
    elif kind == "garbage-bytes":
        data = bytes(rng.getrandbits(8) for _ in range(MEGABYTE))
        result = dsl.parse_bytes(data, "big.nudge")
        assert_clean(result, data.decode("utf-8", errors="replace"))
        assert result.program is None
        return
    else:
        text = _valid_megabyte().replace("wait 3d", "wait 3")
    result = dsl.parse(text, "big.nudge")
    assert_clean(result, text)
    assert result.program is None


@pytest.mark.parametrize(
    "text",
    [
        "when a.b then score +" + "9" * 5000,
        "when a.b then wait " + "9" * 5000 + "d",
        "when a.b and contact.x == " + "9" * 400 + ".5 then stop",
        "when a.b and did c.d at least " + "9" * 5000 + " times within 1d then stop",
        "when a.b then split " + "9" * 5000 + "%: stop end",
    ],
)
def test_huge_numbers_are_clean_errors(text):
    result = everything(text)
    assert result.program is None


def test_the_largest_numbers_round_trip():
    text = "when a.b and contact.x == 123456789012345.123456789012345 and contact.y < 999999999999999 then stop"
    assert dsl.parse(dsl.fmt(text)).program == dsl.parse(text).program
