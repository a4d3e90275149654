"""The grammar itself: conflict-free LALR, keywords that do not break names."""

from __future__ import annotations

import pytest
from lark import Lark

import dsl
from dsl import ast as A
from dsl.parser import grammar_text

from .helpers import parsed


def test_grammar_builds_as_strict_lalr_without_conflicts():
    # strict=True raises on any shift/reduce conflict and on colliding terminals.
    parser = Lark(
        grammar_text(), parser="lalr", start="program", strict=True, propagate_positions=True, keep_all_tokens=True
    )
    assert parser.parse('when a.b then tag "x"') is not None


def test_the_condition_parser_is_strict_lalr_too():
    parser = Lark(
        grammar_text() + "\n%ignore _NL\n",
        parser="lalr",
        start="condition",
        strict=True,
        propagate_positions=True,
        keep_all_tokens=True,
    )
    assert parser.parse('domain(contact.email) == "x"\n  and tag == "vip"') is not None


def test_calls_parse_anywhere_a_value_goes_with_spans():
    text = (
        'rule "Calls"\n'
        '  until order.paid where lower(event.kind) == "a"\n'
        'when form.submitted and domain(contact.email) == "example.com" then\n'
        "  if within(contact.score, 1, 10) or not flagged() then\n"
        '    set contact.stage = pick(contact.stage, "lead")\n'
        "  elif did order.paid where big(event.total) within 3d then\n"
        "    wait until next_workday(today, contact.timezone)\n"
        "    wait for order.paid where big(event.total) up to 1d\n"
        "  end\n"
        "end\n"
    )
    rule = parsed(text).rules[0]
    calls = [node for node in A.walk(rule) if isinstance(node, A.Call)]
    assert [call.name for call in calls] == [
        "lower",
        "domain",
        "within",
        "flagged",
        "pick",
        "big",
        "next_workday",
        "big",
    ]
    domain = calls[1]
    assert domain.args == (A.Path(("contact", "email")),)
    assert (domain.span.line, domain.span.column, domain.span.end_column) == (3, 25, 46)
    assert (domain.function.span.column, domain.function.span.end_column) == (25, 31)
    assert calls[2].args == (A.Path(("contact", "score")), A.Number(1), A.Number(10))
    assert calls[3].args == ()


def test_calls_nest():
    rule = parsed('when a.b and lower(domain(contact.email)) == "x" then stop').rules[0]
    outer = rule.condition.left
    assert outer == A.Call(A.Word("lower"), (A.Call(A.Word("domain"), (A.Path(("contact", "email")),)),))


@pytest.mark.parametrize("word", sorted(dsl.RESERVED_FUNCTION_NAMES))
def test_reserved_words_cannot_name_a_function(word):
    result = dsl.parse(f"when a.b and {word}(1) == 1 then stop")  # `not(1) == 1` is `not (1 == 1)`
    assert not result.ok or not any(isinstance(node, A.Call) for node in A.walk(result.program))


@pytest.mark.parametrize("word", ["score", "wait", "send", "contact", "event", "end", "split", "lower"])
def test_other_words_may_name_a_function(word):
    rule = parsed(f"when a.b and {word}(1) == 1 then stop").rules[0]
    assert rule.condition.left.name == word


def test_grammar_follows_house_style_for_names():
    lark = Lark(grammar_text(), parser="lalr", start="program")
    for terminal in lark.terminals:
        if not terminal.name.startswith("__"):
            assert terminal.name == terminal.name.upper(), terminal.name
    for rule in lark.rules:
        assert rule.origin.name == rule.origin.name.lower(), rule.origin.name


def test_customer_one_liner_parses_without_header_or_end():
    program = parsed('when form.submitted and tag != "vip" then send email welcome; wait 3d; send sms reminder')
    (rule,) = program.rules
    assert rule.name is None
    assert rule.trigger == A.EventTrigger(A.EventName("form.submitted"))
    assert rule.condition == A.Compare("!=", A.TagRef(), A.String("vip"))
    assert rule.steps == (
        A.Send(A.Word("email"), A.Word("welcome")),
        A.Wait(A.Duration(3, "d")),
        A.Send(A.Word("sms"), A.Word("reminder")),
    )
    assert rule.display_name("rules.nudge") == "rules.nudge:1"


@pytest.mark.parametrize(
    "event",
    [
        "form.submitted",
        "class.attended",
        "email.opened",
        "sms.opted_out",
        "score.changed",
        "tag.added",
        "tag.removed",
        "contact.created",
        "contact.updated",
        "wait.over",
        "send.done",
        "end.reached",
        "if.then",
        "rule.changed",
        "when.x",
        "no.show",
        "every.day",
    ],
)
def test_keywords_do_not_break_event_names(event):
    program = parsed(
        f"when {event} then\n  wait for {event} up to 1d\n"
        f"  if did {event} within 3d then\n    stop\n  end\nend\n"
        f'when no {event} for 2d then tag "x"'
    )
    first, second = program.rules
    assert first.trigger.event.name == event
    assert first.steps[0].event.name == event
    assert first.steps[1].branches[0].condition.event.name == event
    assert second.trigger.event.name == event


def test_keywords_stay_keywords_where_the_grammar_wants_them():
    program = parsed(
        'when tag.added and tag == "vip" and event.tag == "x" then\n'
        '  tag "a"\n  score +5\n  wait 1d\n  send email tag\nend'
    )
    rule = program.rules[0]
    assert rule.condition.items[0] == A.Compare("==", A.TagRef(), A.String("vip"))
    assert rule.condition.items[1].left == A.Path(("event", "tag"))
    assert [type(step) for step in rule.steps] == [A.TagStep, A.ScoreStep, A.Wait, A.Send]
    assert rule.steps[3].template == A.Word("tag")


def test_paths_may_start_with_keyword_segments():
    program = parsed("when a.b and contact.score > 3 and event.wait.time > 1 then stop")
    first, second = program.rules[0].condition.items
    assert first.left == A.Path(("contact", "score"))
    assert second.left == A.Path(("event", "wait", "time"))


def test_steps_are_separated_by_newlines_or_semicolons():
    by_lines = parsed('when a.b then\n  tag "x"\n  wait 1d\n  untag "x"\nend')
    by_semicolons = parsed('when a.b then tag "x"; wait 1d; untag "x" end')
    assert by_lines == by_semicolons


def test_rule_end_is_optional_before_the_next_rule_and_at_the_end_of_file():
    program = parsed('when a.b then\n  tag "1"\nrule "Two"\nwhen c.d then\n  tag "2"\nwhen e.f then tag "3"')
    assert [len(rule.steps) for rule in program.rules] == [1, 1, 1]
    assert program.rules[1].name == A.String("Two")


def test_blank_lines_and_comments_are_ignored():
    program = parsed('# top\n\n\nwhen a.b then # here\n\n  # inside\n  tag "x" # after\n\nend\n\n')
    assert program.rules[0].steps == (A.TagStep(A.String("x")),)
    assert [c.text for c in program.comments] == [" top", " here", " inside", " after"]
    assert [c.own_line for c in program.comments] == [True, False, True, False]


def test_hash_inside_a_string_is_not_a_comment():
    program = parsed('when a.b then note "issue #42" # real')
    assert program.rules[0].steps[0].text.value == "issue #42"
    assert [c.text for c in program.comments] == [" real"]


def test_windows_line_endings_and_byte_order_mark_are_accepted():
    program = parsed('\ufeffwhen a.b then\r\n  tag "x"\r\nend\r\n')
    assert program.rules[0].steps == (A.TagStep(A.String("x")),)


def test_every_node_has_a_span():
    program = parsed(
        'rule "R"\n  always\nwhen a.b and contact.score > 1 then\n'
        "  if did c.d where event.x == 1 at least 2 times within 3d then\n"
        "    send email hi\n  end\nend"
    )
    for node in A.walk(program):
        if node is program:
            continue
        assert node.span.line >= 1 and node.span.column >= 1, node
        assert (node.span.end_line, node.span.end_column) > (node.span.line, node.span.column), node


def test_spans_point_at_the_source():
    program = parsed('rule "R"\nwhen a.b then\n  if contact.score > 1 then\n    send email hi\n  end\nend')
    rule = program.rules[0]
    assert rule.span == A.Span(1, 1, 6, 4)
    if_step = rule.steps[0]
    assert if_step.span == A.Span(3, 3, 5, 6)
    condition = if_step.branches[0].condition
    assert condition.span == A.Span(3, 6, 3, 23)
    send = if_step.branches[0].steps[0]
    assert send.span == A.Span(4, 5, 4, 18)
    assert send.template.span == A.Span(4, 16, 4, 18)


def test_spans_are_ignored_by_equality():
    assert dsl.parse('when a.b then tag "x"').program == dsl.parse('\n\nwhen   a.b  then\n tag "x"').program


def test_the_tree_holds_only_nodes_and_plain_values():
    from dataclasses import fields
    from pathlib import Path

    source = (Path(__file__).parent / "cases" / "ok_every_construct.nudge").read_text()
    allowed = (A.Node, A.Span, str, int, float, bool, type(None))
    for node in A.walk(parsed(source)):
        for f in fields(node):
            value = getattr(node, f.name)
            items = value if isinstance(value, tuple) and not isinstance(value, A.Span) else (value,)
            for item in items:
                assert isinstance(item, allowed), (type(node).__name__, f.name, type(item))
