"""Syntax errors phrased for people, never in lark's terminal names.

Known mistakes are recognised the way lark's ``match_examples`` does it
(examples/advanced/error_reporting_lalr.py): each example below is parsed once
and the LALR state it fails in is remembered, so an error in the same state
gets the example's message. The index is keyed by state alone (not by stack
depth, unlike ``match_examples``), so a mistake nested inside an ``if`` is
recognised as well as one at the top. Anything else is described from the set
of tokens the parser would have accepted.
"""

from __future__ import annotations

import re
import threading

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from .diagnostics import did_you_mean, shorten

THEN_AFTER_CONDITION = (
    "expected `then` after the condition",
    "write `then` at the end of the condition, before the steps",
)

EXAMPLES: list[tuple[tuple[str, str], list[str]]] = [
    (
        THEN_AFTER_CONDITION,
        [
            "when a.b and contact.x == 1\n",
            "when a.b and contact.x\n",
            "when a.b and contact.x == 1 send email x",
            "when a.b then\nif contact.x == 1\n",
            "when a.b then\nif contact.x == 1 send email x",
            "when a.b then\nif 1 then\nelif contact.x == 1\n",
        ],
    ),
    (
        (
            "expected `then` after the trigger",
            "a trigger is followed by `then` (or by `and` and a condition): `when form.submitted then`",
        ),
        [
            "when a.b\n",
            "when a.b send email x",
            "when every day at 09:00\n",
            "when every day\n",
            "when every 1h\n",
            "when no a.b for 3d\n",
            "when 1d before contact.x\n",
            "when 1d before contact.x at 09:00\n",
            "when anniversary of contact.x\n",
            "when anniversary of contact.x at 09:00\n",
        ],
    ),
    (
        (
            "expected `when` after the rule's header",
            'a rule reads `rule "Name"`, optional header lines, then `when TRIGGER then`',
        ),
        [
            'rule "x"\nsend email a',
            'rule "x"\nfoo',
            'rule "x"\nonce per contact\nsend email a',
            'rule "x"',
        ],
    ),
    (
        (
            "expected a trigger after `when`",
            "e.g. `when form.submitted`, `when every day at 09:00`, `when 7d before contact.renewal_date`",
        ),
        [
            "when",
            "when\n",
        ],
    ),
    (
        (
            'a rule starts with `rule "Name"` or `when`',
            "write `when EVENT then` before the steps, e.g. `when form.submitted then`",
        ),
        [
            "send email x",
            "foo",
            "end",
            "when a.b then end\nsend email x",
            "when a.b then end\nfoo",
        ],
    ),
    (
        (
            'header lines go under `rule "Name"`',
            'write `rule "Name"` on the line before `once per contact`, `always`, `until` or `quiet hours`',
        ),
        [
            "once per contact\n",
            "always\n",
            "until a.b\n",
            "quiet hours 21:00-08:00\n",
            "when a.b then end\nalways\n",
        ],
    ),
    (
        (
            "an event name has a dot, like `form.submitted`",
            "name events `thing.happened`: `form.submitted`, `class.attended`",
        ),
        [
            "when signup then",
            "when a.b then\nwait for signup up to 3d",
            "when a.b and did signup within 3d then",
            "when no signup for 3d then",
            'rule "x"\nuntil signup\n',
        ],
    ),
    (
        ("expected a quoted string", 'put names and texts in double quotes: `tag "vip"`'),
        [
            "when a.b then tag vip",
            "when a.b then untag vip",
            "when a.b then note hi",
            "when a.b then start other",
            "when a.b then notify sales hi",
            "when a.b then task hi",
            "when a.b and has tag vip then",
            "when a.b and in segment trial then",
            "rule x",
        ],
    ),
    (
        ("`send` needs a channel and a template name", "write it like `send email welcome` or `send sms reminder`"),
        [
            "when a.b then send email\n",
            "when a.b then send\n",
            'when a.b then send email "welcome"',
        ],
    ),
    (
        ("expected a duration such as `3d`", "durations are a number and a unit: `30s`, `15m`, `24h`, `3d`, `2w`"),
        [
            "when a.b then wait 3\n",
            "when a.b then wait 3 days",
            "when a.b then wait for a.b up to 3\n",
            "when a.b and did a.b within 3\n",
            "when 3 days before contact.x then",
            "when every 3 then",
        ],
    ),
    (
        ("`score` takes a signed number", "write `score +10` or `score -5`"),
        [
            "when a.b then score 10",
            "when a.b then score\n",
        ],
    ),
    (
        ("`set` needs `=` and a value", 'write `set contact.stage = "sql"`'),
        [
            "when a.b then set contact.x 1",
            "when a.b then set contact.x\n",
        ],
    ),
    (
        ("`task` needs a text and a team", 'write `task "Call {{ contact.first_name }}" for "sales" [due 1d]`'),
        [
            'when a.b then task "x"\n',
            'when a.b then task "x" "y"',
            'when a.b then task "x" for\n',
        ],
    ),
    (
        ("`=` sets a field; to compare, write `==`", 'compare with `==`, e.g. `contact.stage == "lead"`'),
        [
            "when a.b and contact.x = 1 then",
            "when a.b then\nif contact.x = 1 then",
        ],
    ),
]

CONDITION_EXAMPLES: list[tuple[tuple[str, str], list[str]]] = [
    (
        (
            "an event name has a dot, like `form.submitted`",
            "name events `thing.happened`: `form.submitted`, `class.attended`",
        ),
        [
            "did signup within 3d",
        ],
    ),
    (
        ("expected a quoted string", 'put names and texts in double quotes: `has tag "vip"`'),
        [
            "has tag vip",
            "in segment trial",
        ],
    ),
    (
        ("expected a duration such as `3d`", "durations are a number and a unit: `30s`, `15m`, `24h`, `3d`, `2w`"),
        [
            "did a.b within 3",
        ],
    ),
    (
        ("`=` sets a field; to compare, write `==`", 'compare with `==`, e.g. `contact.stage == "lead"`'),
        [
            "contact.x = 1",
        ],
    ),
]
"""Known mistakes in a bare condition (a segment's text), for the condition parser."""

# Keywords that may start a value or a test: what a misspelled word before `(` may have meant.
_VALUE_KEYWORDS = ("true", "false", "null", "tag", "now", "today", "not", "has", "in", "did")

_index_lock = threading.Lock()
#: per parser: ``{(state, token type): label}`` and ``{state: label}``
_Label = tuple[str, str]  # (message, hint)
_ExampleIndex = tuple[dict[tuple[int, str], _Label], dict[int, _Label]]
_index_cache: dict[int, _ExampleIndex] = {}


def _example_index(lark: Lark) -> _ExampleIndex:
    """``{(state, token type): label}`` and ``{state: label}`` from :data:`EXAMPLES` (or, for the
    condition parser, :data:`CONDITION_EXAMPLES`)."""
    key = id(lark)
    examples = CONDITION_EXAMPLES if list(lark.options.start) == ["condition"] else EXAMPLES
    with _index_lock:
        if key not in _index_cache:
            exact: dict[tuple[int, str], _Label] = {}
            by_state: dict[int, _Label] = {}
            for label, snippets in examples:
                for snippet in snippets:
                    try:
                        lark.parse(snippet)
                    except UnexpectedToken as error:
                        state = error.state.position
                        exact.setdefault((state, error.token.type), label)
                        by_state.setdefault(state, label)
                    except UnexpectedInput:
                        pass
            _index_cache[key] = (exact, by_state)
        return _index_cache[key]


_TERMINAL_WORDS = {
    "DOTTED": "a dotted name such as `form.submitted` or `contact.email`",
    "NAME": "a name",
    "TEMPLATE": "a template name",
    "STRING": 'a quoted string such as `"vip"`',
    "NUMBER": "a number",
    "DURATION": "a duration such as `3d`",
    "TIME": "a time such as `09:00`",
    "DATE": "a date such as `2026-12-31`",
    "PERCENT": "a share such as `50%`",
    "COMPARE": "a comparison such as `==`",
    "_NL": "a new line",
    "_SEMI": "`;`",
    "$END": "the end of the file",
}
_STEP_WORDS = {"SEND", "WAIT", "IF", "SPLIT", "TAG", "UNTAG", "SET", "SCORE", "NOTE", "TASK", "NOTIFY", "START", "STOP"}
_VALUE_WORDS = {
    "STRING",
    "NUMBER",
    "DURATION",
    "TIME",
    "DATE",
    "DOTTED",
    "TRUE",
    "FALSE",
    "NULL",
    "NOW",
    "TODAY",
    "LPAR",
    "LSQB",
    "MINUS",
    "NOT",
    "HAS",
    "DID",
    "IN",
    "TAG",
}
_OPERATOR_WORDS = {"COMPARE", "CONTAINS", "STARTS", "ENDS", "MATCHES", "IS", "PLUS", "MINUS", "AND", "OR", "NOT", "IN"}
_SEPARATORS = {"_NL", "_SEMI"}


def keyword_text(lark: Lark, terminal: str) -> str | None:
    """The literal text of a keyword or punctuation terminal, if it is one."""
    try:
        pattern = lark.get_terminal(terminal).pattern
    except KeyError:
        return None
    return pattern.value if pattern.type == "str" else None


_CLOSERS = {
    "ELIF",
    "ELSE",
    "END",
    "PERCENT",
    "RULE",
    "WHEN",
    "$END",
    "RPAR",
    "RSQB",
    "COMMA",
    "THEN",
    "UP",
    "WITHIN",
    "AT",
}


def describe_expected(lark: Lark, expected: set[str]) -> str:
    """A short English list of what the parser would have accepted."""
    names = set(expected)
    if names & _SEPARATORS:
        # LALR merges look-aheads: after a complete step, every word that may
        # follow a step is "expected". The end of the line says it all.
        names -= _CLOSERS
    parts: list[str] = []
    if len(names & _STEP_WORDS) >= 4:
        parts.append("a step (`send`, `wait`, `if` …)")
        names -= _STEP_WORDS | {"NAME"}
    if len(names & _VALUE_WORDS) >= 4:
        parts.append("a value or condition")
        names -= _VALUE_WORDS | {"NAME"}
    if len(names & _OPERATOR_WORDS) >= 4:
        parts.append("an operator such as `and`, `==` or `contains`")
        names -= _OPERATOR_WORDS
    if names & _SEPARATORS:
        parts.append("the end of the line")
        names -= _SEPARATORS
    for name in sorted(names):
        if name in _TERMINAL_WORDS:
            parts.append(_TERMINAL_WORDS[name])
        else:
            text = keyword_text(lark, name)
            parts.append(f"`{text}`" if text else name.lower())
    if not parts:
        return "nothing more"
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " or " + parts[-1]


def describe_token(token: Token) -> str:
    """How a token reads in a message: `word`, the end of the line, …"""
    if token.type == "_NL":
        return "the end of the line"
    if token.type == "$END":
        return "the end of the file"
    text = str(token)
    if len(text) > 24:
        text = text[:21] + "…"
    return f"`{text}`"


def close_keyword(lark: Lark, token: Token, expected: set[str]) -> str | None:
    """The expected keyword ``token`` looks like a misspelling of, if any."""
    word = str(token)
    if not word.isidentifier():
        return None
    keywords = [k for k in (keyword_text(lark, name) for name in expected) if k and k.isalpha()]
    return did_you_mean(word, keywords, cutoff=0.7)


#: words that join or end a condition: one where a value should be means the value is missing
_CONNECTIVES = frozenset({"then", "and", "or", "end", "else", "elif", "where", "within", "contains", "matches", "is"})


def bare_name_message(name: Token) -> tuple[str, str, str | None]:
    """``(message, hint, replacement)`` for a plain word where a value was expected and no ``(`` follows it;
    ``replacement`` is the keyword it looks like a misspelling of (the "did you mean"), or None."""
    word = str(name)
    shown = shorten(word)
    if word in _CONNECTIVES:  # `when a.b and then`: the value is missing, `then` is no field
        return f"expected a value or condition, found `{word}`", VALUE_HINT, None
    close = did_you_mean(word, _VALUE_KEYWORDS, cutoff=0.6)
    if close:
        return f"unexpected `{shown}` — did you mean `{close}`?", "check the spelling of the keyword", close
    return (
        f"`{shown}` alone is not a value",
        f"a contact field is `contact.{shown}`, an event property `event.{shown}`; "
        f"a function call has parentheses: `{shown}(…)`",
        None,
    )


def is_bare_name(error: UnexpectedToken, previous: Token | None) -> bool:
    """Whether the parser stopped right after a word that could only start a call (``foo == 1``)."""
    return (
        previous is not None
        and previous.type == "NAME"
        and set(error.expected or ()) == {"LPAR"}
        and error.token.type != "LPAR"
    )


TOO_LONG_NUMBER = ("this number is too long", "numbers have at most 15 digits before and after the point")
TOO_LONG_DURATION = ("this duration is too long", "durations have at most 12 digits: `30s`, `3d`, `2w`")
_TOO_LONG = [(re.compile(r"[0-9]{16,}"), TOO_LONG_NUMBER), (re.compile(r"[0-9]{13,}[smhdw]"), TOO_LONG_DURATION)]


def token_message(lark: Lark, error: UnexpectedToken) -> tuple[str, str]:
    """``(message, hint)`` for an unexpected token."""
    token = error.token
    for pattern, too_long in _TOO_LONG:  # read as a name, since no number or duration is that long
        if pattern.fullmatch(str(token)):
            return too_long
    expected = set(error.expected or ())
    exact, by_state = _example_index(lark)
    state: int | None = error.state.position if error.state is not None else None
    label = exact.get((state, token.type)) if state is not None else None
    close = close_keyword(lark, token, expected)
    if close:
        return (f"unexpected {describe_token(token)} — did you mean `{close}`?", "check the spelling of the keyword")
    if label is None and state is not None:
        label = by_state.get(state)
    if label is not None:
        message, hint = label
        if message.startswith("expected"):
            message = f"{message}, found {describe_token(token)}"
        return message, hint
    if token.type == "EQUAL" and "COMPARE" in expected:
        return ("`=` sets a field; to compare, write `==`", 'compare with `==`, e.g. `contact.stage == "lead"`')
    if "THEN" in expected and not expected & _SEPARATORS:
        return (f"{THEN_AFTER_CONDITION[0]}, found {describe_token(token)}", THEN_AFTER_CONDITION[1])
    return (f"expected {describe_expected(lark, expected)}, found {describe_token(token)}", _generic_hint(expected))


VALUE_HINT = (
    'a value is a text `"…"`, a number, a duration `3d`, a date, a field '
    "`contact.FIELD`, an event property `event.PROP`, `now` or `today`"
)

_HINTS = [
    (_SEPARATORS, "one step per line, or separate steps with `;`"),
    ({"RPAR"}, "close every `(` with `)`; a call's arguments are separated by `,`"),
    ({"TO"}, "the form is `wait for EVENT up to 3d`"),
    ({"ON"}, "an auto-winner split reads `split auto on EVENT within 3d`"),
    ({"COLON"}, "split arms read `50%: STEPS`"),
    ({"DURATION"}, "durations are a number and a unit: `30s`, `15m`, `24h`, `3d`, `2w`"),
    ({"TIME"}, "times of day are written `09:00`"),
    ({"STRING"}, 'put names and texts in double quotes: `"vip"`'),
    ({"DOTTED"}, "events and fields are dotted names: `form.submitted`, `contact.email`"),
    ({"TEMPLATE", "NAME"}, "write `send CHANNEL NAME`, e.g. `send email welcome`"),
    ({"END"}, "close every `if`, `split` and `wait for … then` with `end`"),
]


def _generic_hint(expected: set[str]) -> str:
    if len(expected & _VALUE_WORDS) >= 4:
        return VALUE_HINT
    for wanted, hint in _HINTS:
        if expected & wanted:
            return hint
    return "see docs/language.md for the forms the language accepts"


def character_message(error: UnexpectedCharacters, text: str) -> tuple[str, str]:
    """``(message, hint)`` for a character no token can start with."""
    pos = error.pos_in_stream
    char = text[pos] if pos is not None and pos < len(text) else ""
    if char == '"':
        return ("this string is not closed", 'end the string with `"` on the same line')
    if char.isdigit() and char.isascii():
        return TOO_LONG_NUMBER
    if char.isdigit():
        return (f"unexpected digit `{char}`", "write numbers, durations, dates and times with the digits 0-9")
    if char in "\u201c\u201d\u2018\u2019'":
        return (f"unexpected quote `{char}`", 'strings use straight double quotes: `"vip"`')
    if char == "\ufffd":
        return ("unexpected character (invalid or unknown text)", "remove it; rules files are plain UTF-8 text")
    if not char.isprintable():
        return (f"unexpected control character U+{ord(char):04X}", "remove it; rules files are plain text")
    return (f"unexpected character `{char}`", "names use letters, digits and `_`; texts go in double quotes")
