"""``nudge fmt``: canonical text that parses back to the same program."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dsl
from dsl.formatter import FormatError, format_expr
from dsl.parser import parse_expression

from . import strategies
from .helpers import parsed

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_one_liner_becomes_one_step_per_line_with_explicit_end():
    assert dsl.fmt('when form.submitted and tag != "vip" then send email welcome; wait 3d; send sms reminder') == (
        'when form.submitted and tag != "vip" then\n  send email welcome\n  wait 3d\n  send sms reminder\nend\n'
    )


def test_canonical_layout_of_every_block():
    messy = textwrap.dedent("""\
        rule   "R"
        once per contact every 30d
              quiet hours 9:00-8:00
        when every monday at 8:30 then
        if contact.score>1 then tag "a" elif contact.score>0 then
        else
        wait for x.y up to 1d then split 50%: stop; 50%: end else untag "a" end
        end
        wait until (contact.renewal_date-7d)
        score +1.50
        rule "S" when a.b and ((contact.a is set)) then task "t" for "u" due 2h
        """)
    assert dsl.fmt(messy) == textwrap.dedent("""\
        rule "R"
          once per contact every 30d
          quiet hours 09:00-08:00
        when every monday at 08:30 then
          if contact.score > 1 then
            tag "a"
          elif contact.score > 0 then
          else
            wait for x.y up to 1d then
              split
                50%:
                  stop
                50%:
              end
            else
              untag "a"
            end
          end
          wait until contact.renewal_date - 7d
          score +1.5
        end

        rule "S"
        when a.b and contact.a is set then
          task "t" for "u" due 2h
        end
        """)


@pytest.mark.parametrize(
    "source, canonical",
    [
        (
            "(contact.a is set or contact.b is set) and contact.c is set",
            "(contact.a is set or contact.b is set) and contact.c is set",
        ),
        ("not (contact.a is set and contact.b is set)", "not (contact.a is set and contact.b is set)"),
        ("contact.x == 1 - (2 - 3)", "contact.x == 1 - (2 - 3)"),
        ("contact.x == (1 - 2) - 3", "contact.x == 1 - 2 - 3"),
        ("(contact.x == 1) == true", "(contact.x == 1) == true"),
        ('contact.x in ["a","b",]', 'contact.x in ["a", "b"]'),
        ('contact.x == "say \\"hi\\"\\n"', 'contact.x == "say \\"hi\\"\\n"'),
        ("contact.x == -5", "contact.x == -5"),
        ('domain( contact.email ) == "example.com"', 'domain(contact.email) == "example.com"'),
        (
            "f(g(1,2,), (contact.a is set or contact.b is set), -3) and ok()",
            "f(g(1, 2), contact.a is set or contact.b is set, -3) and ok()",
        ),
        (
            "(days_until(contact.renewal_date) - 1) > 2 or score(1) > 0",
            "days_until(contact.renewal_date) - 1 > 2 or score(1) > 0",
        ),
    ],
)
def test_expressions_get_only_the_parentheses_they_need(source, canonical):
    rule = parsed(f"when a.b and {source} then stop").rules[0]
    assert format_expr(rule.condition) == canonical


def test_comments_are_kept_in_place():
    source = textwrap.dedent("""\
        # Header comment
        rule "R"   # about the rule
          # about the policy
          always
        when a.b then
          # before the if
          if contact.x is set then   # trailing on if
            tag "x"
            # last in then
          else
            # first in else
            untag "x"
          end
          # last in rule
        # between rules
        when c.d then stop # trailing on stop
        # at the very end
        """)
    assert dsl.fmt(source) == textwrap.dedent("""\
        # Header comment
        rule "R"  # about the rule
          # about the policy
          always
        when a.b then
          # before the if
          if contact.x is set then  # trailing on if
            tag "x"
            # last in then
          else
            # first in else
            untag "x"
          end
          # last in rule
        end

        # between rules
        when c.d then
          stop  # trailing on stop
        end
        # at the very end
        """)


def test_fmt_refuses_text_with_syntax_errors():
    with pytest.raises(FormatError) as raised:
        dsl.fmt("when a.b then\n  tag vip\n")
    assert raised.value.diagnostics[0].line == 2


@PROPERTY
@given(strategies.program)
def test_formatting_a_tree_gives_text_that_parses_back_to_it(program):
    text = dsl.format_program(program)
    result = dsl.parse(text)
    assert result.program is not None, "\n".join(d.format(text) for d in result.diagnostics) + "\n" + text
    assert result.program == program


@PROPERTY
@given(strategies.program)
def test_fmt_is_idempotent_and_keeps_the_meaning(program):
    text = dsl.format_program(program)
    once = dsl.fmt(text)
    assert dsl.fmt(once) == once
    assert dsl.parse(once).program == dsl.parse(text).program


@PROPERTY
@given(strategies.expr, st.sampled_from([" ", "\n  "]))
def test_a_bare_condition_parses_back_from_its_text_even_across_lines(expr, gap):
    text = format_expr(expr).replace(" and ", gap + "and ")
    condition, diagnostics = parse_expression(text)
    assert diagnostics == [] and condition == expr, text


@PROPERTY
@given(strategies.program, st.data())
def test_comments_survive_formatting_in_order(program, data):
    lines = dsl.format_program(program).split("\n")[:-1]
    inserted = []
    for index in sorted(data.draw(st.lists(st.integers(0, len(lines)), max_size=4)), reverse=True):
        comment = data.draw(st.from_regex(r"[ a-z]{0,10}", fullmatch=True)).rstrip()
        lines.insert(index, "#" + comment)
        inserted.append(comment)
    text = "\n".join(lines) + "\n"
    once = dsl.fmt(text)
    assert dsl.fmt(once) == once
    assert [c.text for c in dsl.parse(once).program.comments] == list(reversed(inserted))
    assert dsl.parse(once).program == dsl.parse(text).program


def test_best_time_sends_and_cap_headers_format_canonically_and_round_trip():
    text = 'rule "D"\n    on cap   wait\n  priority low\nwhen a.b then send email digest  at best time within 24h'
    formatted = dsl.fmt(text)
    assert formatted == (
        'rule "D"\n  on cap wait\n  priority low\nwhen a.b then\n  send email digest at best time within 24h\nend\n'
    )
    assert dsl.fmt(formatted) == formatted
    assert parsed(formatted).rules[0].steps[0].best_within.seconds == 86400
