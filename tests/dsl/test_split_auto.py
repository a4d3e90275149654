"""`split auto on EVENT within DURATION`: parsed, formatted back, compiled with its outcome into the plan."""

from __future__ import annotations

import dsl

SOURCE = """when member.joined then
  split auto on email.clicked within 3d
    60%: send email welcome
    40%:
      send email keep_going
  end
end
"""


def test_auto_split_compiles_its_outcome_event_and_window_into_the_plan():
    plan = dsl.compile_program(dsl.parse(SOURCE).program)
    split = plan["rules"][0]["steps"][0]
    assert split["op"] == "split"
    assert split["auto"] == {"event": "email.clicked", "seconds": 3 * 86400}
    assert [(arm["name"], arm["share"]) for arm in split["arms"]] == [("A", 60), ("B", 40)]
    assert dsl.plan_problems(plan) == []


def test_a_plain_split_has_no_auto_and_another_step_id():
    plain = SOURCE.replace("split auto on email.clicked within 3d", "split")
    auto_split = dsl.compile_program(dsl.parse(SOURCE).program)["rules"][0]["steps"][0]
    plain_split = dsl.compile_program(dsl.parse(plain).program)["rules"][0]["steps"][0]
    assert "auto" not in plain_split
    assert plain_split["id"] != auto_split["id"]


def test_auto_split_formats_back_to_the_same_program():
    formatted = dsl.fmt(SOURCE)
    assert "split auto on email.clicked within 3d" in formatted
    assert dsl.fmt(formatted) == formatted
    again = dsl.parse(formatted).program.rules[0].steps[0]
    first = dsl.parse(SOURCE).program.rules[0].steps[0]
    assert again == first
