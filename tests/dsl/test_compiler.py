"""The compiled plan: shape, jumps, step identity, JSON."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings

import dsl
from dsl.compiler import CompileError, compile_rule

from . import strategies
from .helpers import parsed


def plan_of(text: str, filename: str = "rules.nudge") -> dict:
    return dsl.compile_program(parsed(text, filename))


def rule_plan(text: str) -> dict:
    (rule,) = plan_of(text)["rules"]
    return rule


def ops(rule: dict) -> list[tuple]:
    """Instructions without ids and lines, for readable comparisons."""
    return [{k: v for k, v in step.items() if k not in ("id", "line", "source")} for step in rule["steps"]]


def test_plan_is_versioned_json():
    plan = plan_of('when a.b then tag "x"')
    assert plan["plan_version"] == dsl.PLAN_VERSION == 2
    assert [rule["version"] for rule in plan["rules"]] == [2]  # each rule's plan is stored on its own
    assert json.loads(json.dumps(plan)) == plan


def test_rule_fields_for_the_issue_example():
    rule = rule_plan(
        'rule "Welcome series"\n  once per contact\n  until purchase.completed\n'
        '  quiet hours 21:00-08:00\nwhen member.joined and tag != "vip" then\n'
        "  send email welcome\nend"
    )
    assert rule["name"] == "Welcome series"
    assert rule["line"] == 1
    assert rule["entry"] == {"kind": "once", "every": None}
    assert rule["goal"] == {"event": "purchase.completed", "where": None}
    assert rule["quiet_hours"] == {"start": "21:00", "end": "08:00"}
    assert rule["trigger"] == {"kind": "event", "event": "member.joined"}
    assert rule["condition"] == {"not": {"has_tag": "vip"}}


def test_headerless_rule_is_named_after_file_and_line():
    plan = plan_of('\n\nwhen a.b then tag "x"', "welcome.nudge")
    assert plan["rules"][0]["name"] == "welcome.nudge:3"


def test_entry_policies():
    assert rule_plan("when a.b then stop")["entry"] == {"kind": "default", "every": None}
    assert rule_plan('rule "R"\n  once per contact every 30d\nwhen a.b then stop')["entry"] == {
        "kind": "once_every",
        "every": 30 * 86400,
    }
    assert rule_plan('rule "R"\n  always\nwhen a.b then stop')["entry"] == {"kind": "always", "every": None}


def test_goal_with_condition():
    rule = rule_plan('rule "R"\n  until purchase.completed where event.total >= 100\nwhen a.b then stop')
    assert rule["goal"] == {"event": "purchase.completed", "where": {">=": [{"prop": "total"}, 100]}}


def test_triggers_with_default_time():
    assert rule_plan("when every day then stop")["trigger"] == {
        "kind": "schedule",
        "day": "day",
        "at": "09:00",
        "interval": None,
    }
    assert rule_plan("when every monday at 08:30 then stop")["trigger"] == {
        "kind": "schedule",
        "day": "monday",
        "at": "08:30",
        "interval": None,
    }
    assert rule_plan("when every 1h then stop")["trigger"] == {
        "kind": "schedule",
        "day": None,
        "at": None,
        "interval": 3600,
    }
    assert rule_plan("when anniversary of contact.birthday then stop")["trigger"] == {
        "kind": "anniversary",
        "field": "birthday",
        "at": "09:00",
    }
    assert rule_plan("when 7d before contact.renewal_date at 10:00 then stop")["trigger"] == {
        "kind": "relative_date",
        "field": "renewal_date",
        "offset": -7 * 86400,
        "at": "10:00",
    }
    assert rule_plan("when 1d after contact.trial_ends then stop")["trigger"] == {
        "kind": "relative_date",
        "field": "trial_ends",
        "offset": 86400,
        "at": "09:00",
    }
    assert rule_plan("when no class.attended for 14d then stop")["trigger"] == {
        "kind": "inactivity",
        "event": "class.attended",
        "seconds": 14 * 86400,
    }


def test_match_lists_equality_tests_of_the_top_level_and_chain():
    rule = rule_plan(
        'when visit.completed and event.kind == "trial" and tag == "vip" '
        'and "pro" == contact.plan and has tag "member" and contact.score > 3 '
        "and (event.x == 1 or event.y == 2) then stop"
    )
    assert rule["match"] == [["event.kind", "trial"], ["tag", "vip"], ["contact.plan", "pro"], ["tag", "member"]]
    assert rule_plan('when visit.completed and event.kind == "trial" then stop')["match"] == [["event.kind", "trial"]]
    assert rule_plan('when a.b and event.kind != "trial" then stop')["match"] == []
    assert rule_plan('when every day and contact.plan == "pro" then stop')["match"] == []


def test_simple_steps_compile_to_instructions():
    rule = rule_plan(
        "when a.b then\n  send email welcome\n  wait 3d\n  wait until 09:00\n"
        "  wait until contact.renewal_date - 7d\n  wait until contact.renewal_date at 10:00\n"
        '  tag "t"\n  untag "t"\n'
        '  set contact.stage = "sql"\n  score +10\n  score -5\n  note "n"\n'
        '  task "Call {{ contact.first_name }}" for "desk" due 1d\n  task "x" for "y"\n'
        '  notify "sales" "hi"\n  start "Other"\n  crm_push "deals" 2d\n  stop\nend'
    )
    assert ops(rule) == [
        {"op": "send", "channel": "email", "name": "welcome"},
        {"op": "wait", "seconds": 259200},
        {"op": "wait_until_time", "at": "09:00"},
        {"op": "wait_until", "expr": {"-": [{"field": "renewal_date"}, {"duration": 604800}]}, "at": None},
        {"op": "wait_until", "expr": {"field": "renewal_date"}, "at": "10:00"},
        {"op": "tag", "tag": "t"},
        {"op": "untag", "tag": "t"},
        {"op": "set", "field": "stage", "value": "sql"},
        {"op": "score", "delta": 10},
        {"op": "score", "delta": -5},
        {"op": "note", "text": "n"},
        {"op": "task", "text": "Call {{ contact.first_name }}", "team": "desk", "due": 86400},
        {"op": "task", "text": "x", "team": "y", "due": None},
        {"op": "notify", "team": "sales", "text": "hi"},
        {"op": "start", "rule": "Other"},
        {"op": "plugin", "step": "crm_push", "args": ["deals", {"duration": 172800}]},
        {"op": "stop"},
        {"op": "exit"},
    ]


def test_if_elif_else_compiles_to_branches_and_jumps():
    rule = rule_plan(
        'when a.b then\n  if contact.x == 1 then\n    tag "1"\n'
        '  elif contact.x == 2 then\n    tag "2"\n  else\n    tag "3"\n  end\n  tag "after"\nend'
    )
    assert ops(rule) == [
        {"op": "branch", "cond": {"==": [{"field": "x"}, 1]}, "else": 3},
        {"op": "tag", "tag": "1"},
        {"op": "jump", "to": 7},
        {"op": "branch", "cond": {"==": [{"field": "x"}, 2]}, "else": 6},
        {"op": "tag", "tag": "2"},
        {"op": "jump", "to": 7},
        {"op": "tag", "tag": "3"},
        {"op": "tag", "tag": "after"},
        {"op": "exit"},
    ]
    assert rule["steps"][0]["source"] == "contact.x == 1"


def test_if_without_else_needs_no_jump():
    rule = rule_plan('when a.b then\n  if did class.attended within 3d then\n    tag "1"\n  end\nend')
    assert ops(rule) == [
        {"op": "branch", "cond": {"did": "class.attended", "where": None, "at_least": 1, "within": 259200}, "else": 2},
        {"op": "tag", "tag": "1"},
        {"op": "exit"},
    ]


def test_wait_for_branches():
    plain = rule_plan("when a.b then\n  wait for email.clicked up to 2d\n  stop\nend")
    assert ops(plain)[0] == {
        "op": "wait_for",
        "event": "email.clicked",
        "where": None,
        "seconds": 172800,
        "on_timeout": 1,
    }
    both = rule_plan(
        'when a.b then\n  wait for email.clicked where event.url contains "x" up to 2d then\n'
        '    tag "in"\n  else\n    tag "out"\n  end\nend'
    )
    assert ops(both) == [
        {
            "op": "wait_for",
            "event": "email.clicked",
            "where": {"contains": [{"prop": "url"}, "x"]},
            "seconds": 172800,
            "on_timeout": 3,
        },
        {"op": "tag", "tag": "in"},
        {"op": "jump", "to": 4},
        {"op": "tag", "tag": "out"},
        {"op": "exit"},
    ]
    then_only = rule_plan('when a.b then\n  wait for c.d up to 1d then\n    tag "in"\n  end\nend')
    assert ops(then_only)[0]["on_timeout"] == 2


def test_split_arms_are_named_in_order():
    rule = rule_plan('when a.b then\n  split\n    50%: tag "A"\n    30%:\n    20%: tag "C"\n  end\nend')
    assert ops(rule) == [
        {
            "op": "split",
            "arms": [
                {"name": "A", "share": 50, "to": 1},
                {"name": "B", "share": 30, "to": 3},
                {"name": "C", "share": 20, "to": 4},
            ],
        },
        {"op": "tag", "tag": "A"},
        {"op": "jump", "to": 5},
        {"op": "jump", "to": 5},
        {"op": "tag", "tag": "C"},
        {"op": "exit"},
    ]


def test_condition_tree_forms():
    rule = rule_plan(
        'when a.b and (contact.x in ["a", "b"] or contact.x not in [1]) and tag in ["v", "w"] '
        'and contact.y is not set and contact.email matches "^a" and not in segment "s" '
        "and contact.d > 2026-12-31 and contact.t == 09:00 and contact.n == null and now > today "
        'and contact.z starts with "p" and contact.z ends with "q" and event.n == -1.5 then stop'
    )
    assert rule["condition"] == {
        "and": [
            {"or": [{"in": [{"field": "x"}, ["a", "b"]]}, {"not": {"in": [{"field": "x"}, [1]]}}]},
            {"or": [{"has_tag": "v"}, {"has_tag": "w"}]},
            {"not": {"is_set": {"field": "y"}}},
            {"matches": [{"field": "email"}, "^a"]},
            {"not": {"segment": "s"}},
            {">": [{"field": "d"}, {"date": "2026-12-31"}]},
            {"==": [{"field": "t"}, {"time": "09:00"}]},
            {"==": [{"field": "n"}, None]},
            {">": [{"now": True}, {"today": True}]},
            {"starts_with": [{"field": "z"}, "p"]},
            {"ends_with": [{"field": "z"}, "q"]},
            {"==": [{"prop": "n"}, -1.5]},
        ]
    }


def test_step_ids_are_unique_within_a_rule():
    rule = rule_plan(
        "when a.b then\n  wait 2d\n  send email a\n  wait 2d\n  send email a\n"
        "  if contact.x is set then\n    wait 2d\n  else\n    wait 2d\n  end\nend"
    )
    ids = [s["id"] for s in rule["steps"]]
    assert len(ids) == len(set(ids))


def test_step_ids_survive_edits_elsewhere_in_the_rule():
    before = rule_plan(
        'rule "R"\nwhen a.b then\n  send email welcome\n  wait 3d\n'
        "  if did class.attended within 3d then\n    send email keep_going\n"
        "  else\n    send email getting_started\n  end\n  wait 7d\n  send email trainer_intro\nend"
    )
    after = rule_plan(
        'rule "R"\n# a comment moves every line\nwhen a.b then\n  send email hello\n'
        "  send email welcome\n  wait 3d\n  if did class.attended within 3d then\n"
        '    tag "active"\n    send email keep_going\n  else\n    send email getting_started\n'
        "  end\n  wait 7d\n  send email trainer_intro\nend"
    )

    def by_content(rule):
        return {
            (s["op"], s.get("name"), s.get("seconds"), s.get("source")): s["id"]
            for s in rule["steps"]
            if s["op"] not in ("jump", "exit")
        }

    old, new = by_content(before), by_content(after)
    for key, ident in old.items():
        assert new[key] == ident, key
    assert new[("send", "hello", None, None)] not in old.values()


def test_step_ids_tell_apart_the_same_step_in_different_blocks():
    rule = rule_plan(
        'when a.b then\n  if contact.x is set then\n    tag "t"\n  else\n    tag "t"\n  end\n  tag "t"\nend'
    )
    tags = [s["id"] for s in rule["steps"] if s["op"] == "tag"]
    assert len(set(tags)) == 3


PERMISSIVE = dsl.Vocabulary(channels={}, events=None, contact_fields={})


@settings(max_examples=60, deadline=None)
@given(strategies.program)
def test_any_program_compiles_to_json_with_valid_jumps(program):
    try:
        plan = dsl.compile_program(program)
    except CompileError:
        # Only forms the checker rejects may fail to compile.
        assert any(d.is_error for d in dsl.check(program, PERMISSIVE))
        return
    assert json.loads(json.dumps(plan)) == plan
    for rule in plan["rules"]:
        steps = rule["steps"]
        assert steps[-1]["op"] == "exit"
        assert len({s["id"] for s in steps}) == len(steps)
        for step in steps:
            targets = [step.get("else"), step.get("to"), step.get("on_timeout")]
            targets += [arm["to"] for arm in step.get("arms", [])]
            for target in targets:
                if target is not None:
                    assert 0 <= target < len(steps)


def test_forms_the_checker_rejects_do_not_compile():
    program = parsed('when a.b and tag > "x" then stop')
    assert any(d.is_error for d in dsl.check(program))
    with pytest.raises(CompileError):
        dsl.compile_program(program)


def test_compile_rule_is_usable_alone():
    program = parsed('rule "Solo"\nwhen a.b then tag "x"')
    assert compile_rule(program.rules[0], "f.nudge")["name"] == "Solo"


def test_best_time_send_priority_and_on_cap_reach_the_plan():
    rule = rule_plan(
        'rule "digest"\n  priority low\n  on cap wait\nwhen a.b then\n'
        "  send email digest at best time within 24h\n  send email digest\nend\n"
    )
    assert (rule["priority"], rule["on_cap"]) == ("low", "wait")
    assert ops(rule)[:2] == [
        {"op": "send", "channel": "email", "name": "digest", "best_within": 86400},
        {"op": "send", "channel": "email", "name": "digest"},
    ]
    assert rule["steps"][0]["id"] != rule["steps"][1]["id"]
    plain = rule_plan("when a.b then send email digest")
    assert "priority" not in plain and "on_cap" not in plain  # plans written before the headers read the same
