"""The plan's types: a run-time check against them, and the format version a reader refuses."""

from __future__ import annotations

import copy

import pytest

import dsl

from .helpers import parsed

PLAN = dsl.compile_program(
    parsed(
        'rule "R"\n  until purchase.completed\nwhen form.submitted and event.kind == "trial" then\n'
        '  wait until contact.renewal_date\n  if tag == "vip" then\n    send email welcome\n  else\n    stop\n  end\n'
        '  split 50%: tag "a" 50%: score +2 end\nend',
        "r.nudge",
    )
)


def test_a_compiled_plan_fits_its_types():
    assert dsl.plan_problems(PLAN) == []


@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda p: p["rules"][0]["steps"][0].pop("at"), "plan.rules[0].steps[0]: WaitUntilOp lacks 'at'"),
        (
            lambda p: p["rules"][0]["steps"][1].update({"else": "3"}),
            "plan.rules[0].steps[1].else: expected int, got '3'",
        ),
        (
            lambda p: p["rules"][0]["steps"][1].update({"else": True}),
            "plan.rules[0].steps[1].else: expected int, got True",
        ),
        (lambda p: p["rules"][0]["steps"][0].update({"op": "teleport"}), "fits none of its possible types"),
        (lambda p: p["rules"][0]["trigger"].update({"kind": "weekly"}), "plan.rules[0].trigger: {"),
        (lambda p: p["rules"][0].update({"colour": "red"}), "plan.rules[0]: RulePlan has no key 'colour'"),
        (lambda p: p["rules"][0]["entry"].update({"kind": "twice"}), "plan.rules[0].entry.kind: expected one of"),
        (lambda p: p["rules"][0]["goal"].update({"where": {"==": [1, {2}]}}), "plan.rules[0].goal.where"),
    ],
)
def test_a_plan_that_does_not_fit_says_where(change, problem):
    plan = copy.deepcopy(PLAN)
    change(plan)
    problems = dsl.plan_problems(plan)
    assert problems and any(p.startswith(problem) or problem in p for p in problems), problems


def test_a_reader_refuses_a_plan_of_another_version():
    rule = copy.deepcopy(PLAN["rules"][0])
    dsl.require_version(rule, "rule version 7")
    rule["version"] = dsl.PLAN_VERSION + 1
    with pytest.raises(
        dsl.PlanVersionError,
        match=r"rule version 7 holds a plan of format version 3, newer than "
        r"this Nudge runs \(2\).*upgrade Nudge",
    ):
        dsl.require_version(rule, "rule version 7")
    del rule["version"]
    with pytest.raises(dsl.PlanVersionError, match=r"no format version.*nudge db upgrade"):
        dsl.require_version(rule, "rule version 7")
