"""Every surface form of the language parses to the tree it means."""

from __future__ import annotations

import pytest

from dsl import ast as A

from .helpers import parsed


def rule_of(text: str) -> A.Rule:
    (rule,) = parsed(text).rules
    return rule


def condition(text: str):
    return rule_of(f"when a.b and {text} then stop").condition


def step(text: str):
    return rule_of(f"when a.b then\n  {text}\nend").steps[0]


# ---- header ---------------------------------------------------------------------


def test_full_header_from_the_issue():
    rule = rule_of(
        'rule "Welcome series"                 # optional header\n'
        "  once per contact                    # entry policy\n"
        "  until purchase.completed            # goal\n"
        "  quiet hours 21:00-08:00             # quiet hours\n"
        'when member.joined and tag != "vip" then\n  send email welcome\nend'
    )
    assert rule.name == A.String("Welcome series")
    assert rule.entry == A.EntryPolicy("once")
    assert rule.goal == A.Goal(A.EventName("purchase.completed"))
    assert rule.quiet_hours == A.QuietHours(A.Time(21, 0), A.Time(8, 0))


@pytest.mark.parametrize(
    "line, expected",
    [
        ("once per contact", A.EntryPolicy("once")),
        ("once per contact every 30d", A.EntryPolicy("once_every", A.Duration(30, "d"))),
        ("always", A.EntryPolicy("always")),
    ],
)
def test_entry_policies(line, expected):
    assert rule_of(f'rule "R"\n  {line}\nwhen a.b then stop').entry == expected


def test_goal_with_condition():
    rule = rule_of('rule "R"\n  until purchase.completed where event.total > 100\nwhen a.b then stop')
    assert rule.goal == A.Goal(
        A.EventName("purchase.completed"), A.Compare(">", A.Path(("event", "total")), A.Number(100))
    )


def test_a_rule_without_header_has_no_name():
    rule = rule_of("when a.b then stop")
    assert rule.name is None and rule.header == ()


# ---- triggers -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("form.submitted", A.EventTrigger(A.EventName("form.submitted"))),
        ("every day at 09:00", A.ScheduleTrigger("day", A.Time(9, 0))),
        ("every monday at 08:30", A.ScheduleTrigger("monday", A.Time(8, 30))),
        ("every sunday", A.ScheduleTrigger("sunday", None)),
        ("every 1h", A.IntervalTrigger(A.Duration(1, "h"))),
        ("anniversary of contact.birthday", A.AnniversaryTrigger(A.Path(("contact", "birthday")), None)),
        (
            "anniversary of contact.birthday at 09:00",
            A.AnniversaryTrigger(A.Path(("contact", "birthday")), A.Time(9, 0)),
        ),
        (
            "7d before contact.renewal_date",
            A.RelativeDateTrigger(A.Duration(7, "d"), "before", A.Path(("contact", "renewal_date")), None),
        ),
        (
            "1d after contact.trial_ends at 10:00",
            A.RelativeDateTrigger(A.Duration(1, "d"), "after", A.Path(("contact", "trial_ends")), A.Time(10, 0)),
        ),
        ("no class.attended for 14d", A.InactivityTrigger(A.EventName("class.attended"), A.Duration(14, "d"))),
    ],
)
def test_triggers(text, expected):
    rule = rule_of(f"when {text} then stop")
    assert rule.trigger == expected
    assert rule.condition is None


@pytest.mark.parametrize(
    "text", ["every day at 09:00", "no class.attended for 14d", "7d before contact.renewal_date at 10:00", "every 1h"]
)
def test_every_trigger_takes_an_and_condition(text):
    rule = rule_of(f"when {text} and contact.score > 5 then stop")
    assert rule.condition == A.Compare(">", A.Path(("contact", "score")), A.Number(5))


# ---- conditions -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ('"a \\"quoted\\" word"', A.String('a "quoted" word')),
        ('"back\\\\slash\\n"', A.String("back\\slash\n")),
        ("42", A.Number(42)),
        ("4.5", A.Number(4.5)),
        ("-3", A.Number(-3)),
        ("true", A.Bool(True)),
        ("false", A.Bool(False)),
        ("null", A.Null()),
        ("30s", A.Duration(30, "s")),
        ("15m", A.Duration(15, "m")),
        ("24h", A.Duration(24, "h")),
        ("2w", A.Duration(2, "w")),
        ("09:00", A.Time(9, 0)),
        ("2026-12-31", A.Date("2026-12-31")),
        ('["a", "b"]', A.ListLit((A.String("a"), A.String("b")))),
        ('["a", "b",]', A.ListLit((A.String("a"), A.String("b")))),
        ("[]", A.ListLit(())),
        ("now", A.Now()),
        ("today", A.Today()),
        ("contact.first_name", A.Path(("contact", "first_name"))),
        ("event.order.total", A.Path(("event", "order", "total"))),
    ],
)
def test_literals_and_paths(text, expected):
    assert condition(f"contact.x == {text}").right == expected


@pytest.mark.parametrize(
    "op", ["==", "!=", "<", "<=", ">", ">=", "in", "not in", "contains", "starts with", "ends with"]
)
def test_comparison_operators(op):
    assert condition(f"contact.x {op} contact.y") == A.Compare(op, A.Path(("contact", "x")), A.Path(("contact", "y")))


def test_matches_is_set_and_is_not_set():
    assert condition('contact.email matches "^a.*@x\\\\.com$"') == A.Matches(
        A.Path(("contact", "email")), A.String("^a.*@x\\.com$")
    )
    assert condition("contact.phone is set") == A.IsSet(A.Path(("contact", "phone")))
    assert condition("contact.phone is not set") == A.IsSet(A.Path(("contact", "phone")), True)


def test_tags_and_segments():
    assert condition('tag == "vip"') == A.Compare("==", A.TagRef(), A.String("vip"))
    assert condition('has tag "vip"') == A.HasTag(A.String("vip"))
    assert condition('in segment "trial members"') == A.InSegment(A.String("trial members"))


def test_did_in_all_its_forms():
    assert condition("did class.attended within 3d") == A.Did(
        A.EventName("class.attended"), None, None, A.Duration(3, "d")
    )
    assert condition('did page.visited where event.url contains "/pricing" at least 2 times within 7d') == A.Did(
        A.EventName("page.visited"),
        A.Compare("contains", A.Path(("event", "url")), A.String("/pricing")),
        A.Number(2),
        A.Duration(7, "d"),
    )


def test_date_arithmetic():
    assert condition("contact.last_seen < now - 14d") == A.Compare(
        "<", A.Path(("contact", "last_seen")), A.Arith("-", A.Now(), A.Duration(14, "d"))
    )


def test_arithmetic_is_left_associative():
    assert condition("contact.x == 1 - 2 + 3").right == A.Arith(
        "+", A.Arith("-", A.Number(1), A.Number(2)), A.Number(3)
    )


def test_precedence_of_not_and_or():
    tree = condition("not contact.a == 1 or contact.b == 2 and contact.c == 3")
    a, b, c = (A.Compare("==", A.Path(("contact", n)), A.Number(i)) for n, i in (("a", 1), ("b", 2), ("c", 3)))
    # The rule's own `and` joins the trigger; the condition is the whole `or`.
    assert tree == A.Or((A.Not(a), A.And((b, c))))


def test_parentheses_group_and_chains_flatten():
    a, b, c = (A.IsSet(A.Path(("contact", n))) for n in "abc")
    assert condition("(contact.a is set or contact.b is set) and contact.c is set") == A.And((A.Or((a, b)), c))
    assert condition("contact.a is set and (contact.b is set and contact.c is set)") == A.And((a, b, c))
    assert condition("((contact.a is set))") == a


# ---- steps ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("send email welcome", A.Send(A.Word("email"), A.Word("welcome"))),
        ("send webhook billing-sync", A.Send(A.Word("webhook"), A.Word("billing-sync"))),
        ("wait 3d", A.Wait(A.Duration(3, "d"))),
        ("wait until 09:00", A.WaitUntilTime(A.Time(9, 0))),
        (
            "wait until contact.renewal_date - 7d",
            A.WaitUntil(A.Arith("-", A.Path(("contact", "renewal_date")), A.Duration(7, "d"))),
        ),
        (
            "wait until contact.renewal_date - 30d at 10:00",
            A.WaitUntil(A.Arith("-", A.Path(("contact", "renewal_date")), A.Duration(30, "d")), A.Time(10, 0)),
        ),
        ('tag "at-risk"', A.TagStep(A.String("at-risk"))),
        ('untag "at-risk"', A.UntagStep(A.String("at-risk"))),
        ('set contact.stage = "sql"', A.SetField(A.Path(("contact", "stage")), A.String("sql"))),
        ("score +10", A.ScoreStep(10)),
        ("score -5", A.ScoreStep(-5)),
        ('note "text"', A.NoteStep(A.String("text"))),
        (
            'task "Call {{ contact.first_name }}" for "front-desk"',
            A.TaskStep(A.String("Call {{ contact.first_name }}"), A.String("front-desk")),
        ),
        (
            'task "Call" for "front-desk" due 1d',
            A.TaskStep(A.String("Call"), A.String("front-desk"), A.Duration(1, "d")),
        ),
        (
            'notify "sales" "Hot lead: {{ contact.email }}"',
            A.NotifyStep(A.String("sales"), A.String("Hot lead: {{ contact.email }}")),
        ),
        ('start "Other rule"', A.StartStep(A.String("Other rule"))),
        ("stop", A.StopStep()),
        ('crm_push "deals" 3d', A.PluginStep(A.Word("crm_push"), (A.String("deals"), A.Duration(3, "d")))),
    ],
)
def test_simple_steps(text, expected):
    assert step(text) == expected


def test_wait_for_without_branches_simply_continues():
    assert step("wait for email.clicked up to 2d") == A.WaitFor(A.EventName("email.clicked"), None, A.Duration(2, "d"))


def test_wait_for_with_then_and_else():
    found = step(
        'wait for email.clicked where event.url contains "x" up to 2d then\n'
        '    tag "clicked"\n  else\n    tag "ignored"\n  end'
    )
    assert found == A.WaitFor(
        A.EventName("email.clicked"),
        A.Compare("contains", A.Path(("event", "url")), A.String("x")),
        A.Duration(2, "d"),
        (A.TagStep(A.String("clicked")),),
        (A.TagStep(A.String("ignored")),),
    )


def test_if_elif_else():
    found = step(
        'if contact.score > 10 then\n    tag "hot"\n  elif contact.score > 5 then\n'
        '    tag "warm"\n  elif contact.score > 1 then\n  else\n    tag "cold"\n  end'
    )
    assert [b.condition.right for b in found.branches] == [A.Number(10), A.Number(5), A.Number(1)]
    assert [len(b.steps) for b in found.branches] == [1, 1, 0]
    assert found.else_steps == (A.TagStep(A.String("cold")),)


def test_if_on_one_line():
    assert step('if contact.vip == true then tag "v" else untag "v" end') == A.If(
        (A.Branch(A.Compare("==", A.Path(("contact", "vip")), A.Bool(True)), (A.TagStep(A.String("v")),)),),
        (A.UntagStep(A.String("v")),),
    )


def test_split_arms_in_order():
    found = step("split\n    50%: send email a\n    30%:\n      send email b\n      wait 1d\n    20%:\n  end")
    assert [arm.share for arm in found.arms] == [50, 30, 20]
    assert [len(arm.steps) for arm in found.arms] == [1, 2, 0]


def test_split_on_one_line():
    found = step("split 50%: send email a; 50%: send email b end")
    assert [arm.steps[0].template.text for arm in found.arms] == ["a", "b"]


def test_nested_blocks():
    rule = rule_of(
        "when a.b then\n  if contact.x is set then\n    split\n      50%:\n"
        "        wait for c.d up to 1d then\n          stop\n        end\n"
        "      50%: stop\n    end\n  end\nend"
    )
    split = rule.steps[0].branches[0].steps[0]
    assert split.arms[0].steps[0].then_steps == (A.StopStep(),)
