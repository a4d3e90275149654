"""Hypothesis strategies that build syntax trees of valid programs.

The trees are in the parser's normal form (``and``/``or`` never directly inside
themselves, no bare time after ``wait until``), so ``parse(format(tree)) == tree``.
"""

from __future__ import annotations

import datetime as dt

from hypothesis import strategies as st

import dsl
from dsl import ast as A

# Words that are keywords somewhere: good stress for names and event segments.
KEYWORDISH = [
    "tag",
    "score",
    "contact",
    "wait",
    "send",
    "end",
    "if",
    "then",
    "when",
    "rule",
    "every",
    "no",
    "did",
    "at",
    "in",
    "not",
    "and",
    "or",
    "set",
    "start",
    "stop",
    "split",
    "day",
    "before",
    "after",
    "until",
    "for",
    "up",
    "to",
    "event",
    "else",
    "elif",
]

segment = st.one_of(st.sampled_from(KEYWORDISH), st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True))
event_name = st.builds(lambda a, b: A.EventName(f"{a}.{b}"), segment, segment)
field_name = st.one_of(
    st.sampled_from(["email", "score", "first_name", "birthday", "stage"]),
    st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True),
)
contact_path = st.builds(lambda f: A.Path(("contact", f)), field_name)
event_path = st.builds(lambda parts: A.Path(("event",) + tuple(parts)), st.lists(segment, min_size=1, max_size=2))
path = st.one_of(contact_path, event_path)

# Texts a file can hold: no lone surrogates, and no CR (the parser refuses a CR without a new line after it).
text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=12)
string = st.builds(A.String, text)
plain_word = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True).filter(lambda w: w not in KEYWORDISH)
# Floats as the language writes them: at most 15 digits on each side of the point.
number_value = st.one_of(
    st.integers(min_value=-(10**6), max_value=10**6),
    st.from_regex(r"-?[0-9]{1,6}\.[0-9]{1,8}", fullmatch=True).map(float),
)
number = st.builds(A.Number, number_value)
duration = st.builds(A.Duration, st.integers(min_value=0, max_value=999), st.sampled_from("smhdw"))
time = st.builds(A.Time, st.integers(min_value=0, max_value=23), st.integers(min_value=0, max_value=59))
date = st.builds(lambda d: A.Date(d.isoformat()), st.dates(min_value=dt.date(1000, 1, 1)))

scalar = st.one_of(string, number, st.builds(A.Bool, st.booleans()), st.just(A.Null()), duration, time, date)
atom = st.one_of(
    scalar,
    path,
    st.just(A.TagRef()),
    st.just(A.Now()),
    st.just(A.Today()),
    st.builds(lambda items: A.ListLit(tuple(items)), st.lists(scalar, max_size=3)),
)


def _n_ary(cls, items):
    flat = []
    for item in items:
        flat.extend(item.items if isinstance(item, cls) else (item,))
    return cls(tuple(flat))


# Function names: plain words, keyword-ish ones included (`score(…)`, `wait(…)`) except the
# words that are keywords where a value starts.
function_name = st.one_of(
    st.sampled_from([w for w in KEYWORDISH if w not in dsl.RESERVED_FUNCTION_NAMES]),
    st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True).filter(lambda w: w not in dsl.RESERVED_FUNCTION_NAMES),
)


def _extend(children):
    ops = st.sampled_from(A.TEST_OPS)
    return st.one_of(
        st.builds(A.Call, st.builds(A.Word, function_name), st.lists(children, max_size=3).map(tuple)),
        st.builds(A.Compare, ops, children, children),
        st.builds(A.Arith, st.sampled_from("+-"), children, children),
        st.builds(A.Matches, children, string),
        st.builds(A.IsSet, children, st.booleans()),
        st.builds(A.Not, children),
        st.builds(lambda items: _n_ary(A.And, items), st.lists(children, min_size=2, max_size=3)),
        st.builds(lambda items: _n_ary(A.Or, items), st.lists(children, min_size=2, max_size=3)),
        st.builds(
            A.Did,
            event_name,
            st.none() | children,
            st.none() | st.builds(A.Number, st.integers(min_value=0, max_value=99)),
            duration,
        ),
    )


expr = st.recursive(
    st.one_of(
        atom,
        st.builds(A.HasTag, string),
        st.builds(A.InSegment, string),
        st.builds(lambda name: A.Call(A.Word(name), ()), function_name),
    ),
    _extend,
    max_leaves=5,
)

channel = st.builds(A.Word, plain_word)
template = st.builds(A.Word, st.from_regex(r"[A-Za-z0-9_]{1,6}(-[a-z0-9]{1,3})?", fullmatch=True))
plugin_arg = st.one_of(
    string,
    st.builds(A.Number, st.integers(min_value=0, max_value=999)),
    duration,
    time,
    date,
    path,
    st.builds(A.Word, plain_word),
)

simple_step = st.one_of(
    st.builds(A.Send, channel, template),
    st.builds(A.Wait, duration),
    st.builds(A.WaitUntil, expr.filter(lambda e: not isinstance(e, A.Time)), st.none() | time),
    st.builds(A.WaitUntilTime, time),
    st.builds(A.WaitFor, event_name, st.none() | expr, duration),
    st.builds(A.TagStep, string),
    st.builds(A.UntagStep, string),
    st.builds(A.SetField, contact_path, expr),
    st.builds(A.ScoreStep, number_value),
    st.builds(A.NoteStep, string),
    st.builds(A.TaskStep, string, string, st.none() | duration),
    st.builds(A.NotifyStep, string, string),
    st.builds(A.StartStep, string),
    st.just(A.StopStep()),
    st.builds(
        A.PluginStep,
        st.builds(A.Word, st.sampled_from(["crm_push", "slack", "sync_deal"])),
        st.lists(plugin_arg, max_size=3).map(tuple),
    ),
)


def _blocks(steps):
    block = st.lists(steps, max_size=2).map(tuple)
    return st.one_of(
        st.builds(
            lambda conds, blocks, other: A.If(
                tuple(A.Branch(c, b) for c, b in zip(conds, blocks, strict=False)), other
            ),
            st.lists(expr, min_size=1, max_size=3),
            st.lists(block, min_size=3, max_size=3),
            st.none() | block,
        ),
        st.builds(
            lambda shares, blocks: A.Split(tuple(A.SplitArm(s, b) for s, b in zip(shares, blocks, strict=False))),
            st.lists(st.integers(min_value=0, max_value=100), min_size=1, max_size=3),
            st.lists(block, min_size=3, max_size=3),
        ),
        st.builds(A.WaitFor, event_name, st.none() | expr, duration, block, st.none() | block),
    )


step = st.recursive(simple_step, _blocks, max_leaves=4)
steps = st.lists(step, max_size=3).map(tuple)

trigger = st.one_of(
    st.builds(A.EventTrigger, event_name),
    st.builds(A.ScheduleTrigger, st.sampled_from(("day",) + A.WEEKDAYS), st.none() | time),
    st.builds(A.IntervalTrigger, duration),
    st.builds(A.AnniversaryTrigger, contact_path, st.none() | time),
    st.builds(A.RelativeDateTrigger, duration, st.sampled_from(["before", "after"]), contact_path, st.none() | time),
    st.builds(A.InactivityTrigger, event_name, duration),
)

header_item = st.one_of(
    st.just(A.EntryPolicy("once")),
    st.builds(lambda d: A.EntryPolicy("once_every", d), duration),
    st.just(A.EntryPolicy("always")),
    st.builds(A.Goal, event_name, st.none() | expr),
    st.builds(A.QuietHours, time, time),
)


@st.composite
def rule(draw) -> A.Rule:
    named = draw(st.booleans())
    name = draw(string) if named else None
    header = tuple(draw(st.lists(header_item, max_size=3))) if named else ()
    return A.Rule(name, header, draw(trigger), draw(st.none() | expr), draw(steps))


program = st.builds(lambda rules: A.Program("<input>", tuple(rules)), st.lists(rule(), max_size=2))
