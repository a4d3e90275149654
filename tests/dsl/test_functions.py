"""Condition functions in the language: calls are typed by the checker and run by the evaluator."""

from __future__ import annotations

import datetime as dt

import pytest

import dsl
from dsl import Signature

from .helpers import diagnostics_text, vocab
from .test_evaluate import Context, cond

UTC = dt.UTC


def _domain(address: str) -> str:
    return address[address.find("@") + 1 :].lower()


def _broken(value: str) -> str:
    raise RuntimeError("the lookup service is down")


FUNCTIONS = [
    Signature("domain", ("string",), "string", _domain, {"sqlite": "x", "postgresql": "x"}),
    Signature("between", ("number", "number", "number"), "bool", lambda x, low, high: low <= x <= high),
    Signature("weekday", ("date",), "number", lambda day: day.isoweekday()),
    Signature("starts", ("datetime",), "datetime", lambda moment: moment),
    Signature("broken", ("string",), "string", _broken),
    Signature("sloppy", ("string",), "number", lambda value: "not a number"),
    Signature("nothing", ("string",), "string", lambda value: None),
    Signature("flagged", (), "bool", lambda: True),
    Signature("unplugged", ("string",), "string"),  # checked, but no implementation here
]
WORDS = vocab().with_functions(FUNCTIONS)


def errors(text: str) -> list[str]:
    return diagnostics_text(f"when form.submitted and {text} then stop", WORDS)


# -- the checker -------------------------------------------------------------------------------
def test_an_unknown_function_is_named_with_a_suggestion_at_its_line_and_column():
    assert errors('domian(contact.email) == "example.com"') == [
        '1:25: unknown function "domian" — did you mean "domain"?'
    ]


def test_without_any_function_the_hint_says_they_come_from_plugins():
    result = dsl.parse('when a.b and domain(contact.email) == "x" then stop')
    [problem] = dsl.check(result.program, vocab())
    assert problem.message == 'unknown function "domain"' and "no installed plugin declares one" in problem.hint


@pytest.mark.parametrize(
    "text, expected",
    [
        ('domain(contact.email, contact.phone) == "x"', "1:25: `domain()` takes 1 argument (a string), not 2"),
        ("between(contact.score) ", "1:25: `between()` takes 3 arguments (a number, a number, a number), not 1"),
        ("flagged(1)", "1:25: `flagged()` takes no arguments, not 1"),
        ('domain(contact.score) == "x"', "1:32: argument 1 of `domain()` must be a string, not a number"),
        ('domain(tag) == "x"', "1:32: argument 1 of `domain()` must be a string, not `tag`"),
        ("domain(contact.email) == 3", "1:25: cannot compare a string with a number"),
        ("domain(contact.email)", "1:25: this condition is a string, not true or false"),
        ("weekday(contact.renewal_date) > now", "1:25: cannot compare a number with a date-time"),
        ("between(domain(contact.email), 1, 2)", "1:33: argument 1 of `between()` must be a number, not a string"),
    ],
)
def test_calls_are_typed(text, expected):
    assert errors(text) == [expected]


def test_well_typed_calls_check_cleanly_wherever_a_value_goes():
    text = (
        'rule "Typed"\n  until order.paid where between(event.total, 1, 10)\n'
        'when form.submitted and domain(contact.email) == "example.com" and flagged() then\n'
        "  if weekday(contact.renewal_date) >= 6 then\n    set contact.plan = domain(contact.email)\n  end\n"
        "  wait until starts(contact.renewal_date - 1d) at 10:00\n"
        "  wait for order.paid where between(event.total, 1, 10) up to 1d\n"
        "  if did order.paid where between(event.total, 1, weekday(today)) within 3d then\n    stop\n  end\n"
        "end\n"
    )
    assert diagnostics_text(text, WORDS) == []


def test_a_segment_may_only_call_functions_with_an_sql_form_for_its_database():
    text = 'domain(contact.email) == "example.com" and\n  between(contact.score, 1, 5)'
    result = dsl.parse_condition(text, "condition", WORDS, sql_dialect="sqlite")
    assert [(d.line, d.col, d.message) for d in result.diagnostics] == [
        (2, 3, "`between()` has no SQL form, so a segment cannot use it")
    ]
    assert "use it in a rule's condition instead" in result.diagnostics[0].hint
    assert dsl.parse_condition(text, "condition", WORDS).ok  # anywhere else it is fine
    assert not dsl.parse_condition('domain(contact.email) == "x"', "c", WORDS, sql_dialect="mysql").ok


# -- bare conditions ------------------------------------------------------------------------------
def test_a_bare_condition_compiles_to_the_tree_a_rule_would_have():
    result = dsl.parse_condition('domain(contact.email) == "example.com"\n  and tag == "vip"', "segment", WORDS)
    assert result.ok and result.diagnostics == []
    assert result.tree == cond('domain(contact.email) == "example.com" and tag == "vip"')
    assert result.tree["and"][0] == {"==": [{"call": "domain", "args": [{"field": "email"}]}, "example.com"]}


@pytest.mark.parametrize(
    "text, where",
    [
        ('tag == "vip" and\n   contact.colour == "red"', (2, 4, 'unknown contact field "colour"')),
        ("contact.score >\n", (1, 16, "expected a value or condition, found the end of the condition")),
        ('tag == "vip" and event.url == "/x"', (1, 18, "`event.url` has no event to refer to")),
        ("contact.birthday == 2026-13-01", (1, 21, "`2026-13-01` is not a date")),
        ('  colour == "red"', (1, 3, "`colour` alone is not a value")),
        (
            'tag == "vip"; stop',
            (
                1,
                13,
                "expected an operator such as `and`, `==` or `contains`, `at`, `,`, `)`, `]` or `within`, found `;`",
            ),
        ),
    ],
)
def test_bare_condition_errors_point_into_its_own_text(text, where):
    result = dsl.parse_condition(text, "segment", WORDS)
    assert not result.ok and result.tree is None
    first = result.diagnostics[0]
    assert (first.line, first.col, first.message) == where


# -- the evaluator ----------------------------------------------------------------------------------
class FunctionContext(Context):
    """The test context with condition functions, which records what it is told about failed calls."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.failures: list[tuple[str, str]] = []

    def function(self, name):
        return {f.name: f for f in FUNCTIONS}.get(name)

    def function_failed(self, name, problem):
        self.failures.append((name, problem))


def test_calls_run_the_injected_implementation():
    context = FunctionContext(fields={"email": "ana@Example.COM", "score": 7})
    assert dsl.holds(cond('domain(contact.email) == "example.com"'), context)
    assert dsl.holds(cond("between(contact.score, 1, 10) and flagged()"), context)
    assert not dsl.holds(cond("between(contact.score, 8, 10)"), context)
    assert dsl.evaluate.evaluate(cond("weekday(2026-03-14) == 6")["=="][0], context) == 6
    assert context.failures == []


def test_arguments_and_results_are_brought_to_their_declared_types():
    context = FunctionContext(fields={"renewal_date": dt.date(2026, 3, 14)})
    assert dsl.holds(cond("weekday(contact.renewal_date) == 6"), context)
    assert dsl.holds(cond("weekday(now) == 2"), context)  # a date-time given for a date: its UTC day
    assert dsl.evaluate.evaluate(cond("starts(2026-03-14) == now")["=="][0], context) == dt.datetime(
        2026, 3, 14, tzinfo=UTC
    )  # a date given for a date-time: its midnight UTC


def test_a_missing_or_mistyped_argument_makes_the_call_unknown_without_running_it():
    calls = []
    spy = Signature("spy", ("string",), "bool", lambda value: calls.append(value) or True)
    context = FunctionContext(fields={"score": 3})
    context.function = lambda name: spy
    assert dsl.truth(cond("spy(contact.email)"), context) is None
    assert dsl.truth(cond("not spy(contact.email)"), context) is None
    assert dsl.truth({"call": "spy", "args": [{"field": "score"}]}, context) is None
    assert calls == [] and context.failures == []


@pytest.mark.parametrize(
    "text, problem",
    [
        ('broken(contact.email) == "x"', "RuntimeError: the lookup service is down"),
        ("sloppy(contact.email) > 1", "it returned a string, but declares number"),
        ('unplugged(contact.email) == "x"', "no installed plugin provides it"),
    ],
)
def test_a_call_that_fails_is_unknown_and_the_context_hears_why(text, problem):
    context = FunctionContext(fields={"email": "ana@example.com"})
    assert dsl.truth(cond(text), context) is None
    assert not dsl.holds(cond(f"not ({text})"), context)  # a failure never makes a condition hold
    assert dsl.holds(cond(f"({text}) or true"), context)  # the rest of the condition still counts
    assert context.failures[0] == (text.split("(")[0], problem)


def test_a_result_of_none_is_a_missing_value_not_a_failure():
    context = FunctionContext(fields={"email": "ana@example.com"})
    assert dsl.truth(cond('nothing(contact.email) == "x"'), context) is None
    assert context.failures == []


def test_a_plan_older_than_the_function_is_a_failure_not_a_crash():
    context = FunctionContext(fields={"email": "ana@example.com"})
    tree = {"call": "domain", "args": [{"field": "email"}, 1]}
    assert dsl.truth({"==": [tree, "example.com"]}, context) is None
    assert context.failures == [
        ("domain", "it takes 1 argument(s) now, the rule passes 2; apply the rules again to check them")
    ]


def test_a_context_without_functions_evaluates_calls_as_unknown():
    assert dsl.truth(cond('domain(contact.email) == "x"'), Context(fields={"email": "a@x"})) is None
