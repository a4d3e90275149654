"""A rule of several splits: each split's arms are compared on exactly the journeys that took each arm AT THAT split,
with what they did after later splits (a goal reached after the second split counts for the arm taken at the
first as well); the steps' figures and their arms (the latest split's) are those of the journeys; an auto-winner
split still keeps its test; a rule of more splits than the stats' keys hold is counted without overflowing the
column, the splits past it saying why they are not compared; counters stored before these keys are still read."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from sqlalchemy import func, insert, select

from server.db import get_session
from server.engine.arms import MAX_SPLITS
from server.engine.funnel import rule_funnel
from server.engine.jobs import process_events, requeue_due
from server.engine.rollup import rollup
from server.models import Contact, Enrolment, Event, JourneyLog, Rule, RuleVersion, SplitAssignment, StatCounter

from ..helpers import load_rules, run_worker

#: each split draws its own arm for a contact (30/70, then 70/30): journeys go every way, A or B then A or B
SAME_NAMES = """rule "Twice"
  until order.placed
when signup.done then
  split
    30%: tag "first-a"
    70%: tag "first-b"
  end
  wait 1d
  split
    70%: tag "second-a"
    30%: tag "second-b"
  end
  wait 1d
end
"""
#: the second split, an auto-winner one, has an arm C the first has not
OTHER_NAMES = SAME_NAMES.replace(
    """  split
    70%: tag "second-a"
    30%: tag "second-b"
""",
    """  split auto on order.placed within 1d
    10%: tag "second-a"
    10%: tag "second-b"
    80%: tag "second-c"
""",
)
assert OTHER_NAMES != SAME_NAMES
PEOPLE = 24


def _signed_up(app, count: int) -> list[int]:
    """*count* new contacts sign up (the engine runs their journeys to the first wait); their ids."""
    with app.app_context():
        session = get_session()
        session.execute(insert(Contact), [{"email": f"p{i}@example.com", "fields": {}} for i in range(count)])
        people = list(session.scalars(select(Contact.id).order_by(Contact.id)))
        session.commit()
    _events(app, [(person, "signup.done") for person in people])
    return people


def _events(app, events: list[tuple[int, str]]) -> None:
    if not events:
        return
    with app.app_context():
        session = get_session()
        session.execute(insert(Event), [{"contact_id": c, "name": name, "props": {}} for c, name in events])
        session.commit()
        process_events([])


def _next_day(app, clock) -> None:
    clock.advance(timedelta(days=1, hours=1))
    with app.app_context():
        requeue_due()
    run_worker(app)


def _arms(app) -> dict[int, list[str]]:
    """Each contact's arms, split by split, as the journeys' trace says."""
    with app.app_context():
        lines = get_session().execute(
            select(JourneyLog.contact_id, JourneyLog.data).where(JourneyLog.action == "split").order_by(JourneyLog.id)
        )
        arms: dict[int, list[str]] = {}
        for contact, data in lines:
            arms.setdefault(contact, []).append(data["arm"])
        return arms


def _funnel(app) -> dict:
    with app.app_context():
        session = get_session()
        rollup(session, limit=None)
        return rule_funnel(session, "Twice")


def _compared(split: dict) -> dict[str, tuple[int, int]]:
    return {arm["name"]: (arm["exposed"], arm["converted"]) for arm in split["arms"]}


def _by_arm(people: list[int], arms: dict[int, list[str]], split: int) -> Counter:
    return Counter(arms[person][split] for person in people)


def _run(app, clock, rule: str, pick_early, pick_late) -> tuple[dict, dict[int, list[str]], list[int], list[int]]:
    """The rule run: everybody signs up; those *pick_early* picks (given each one's first arm) reach the goal in the
    first wait; a day later the rest take the second split; those *pick_late* picks (given their two arms) reach
    the goal in the second wait. The funnel, the arms, the early and the late converters."""
    load_rules(app, rule)
    people = _signed_up(app, PEOPLE)
    first = _arms(app)
    early = pick_early({person: first[person][0] for person in people})
    _events(app, [(person, "order.placed") for person in early])
    _next_day(app, clock)
    arms = _arms(app)
    late = pick_late({person: tuple(arms[person]) for person in people if person not in early})
    _events(app, [(person, "order.placed") for person in late])
    _next_day(app, clock)  # the second wait ends for the others: their journeys complete
    return _funnel(app), arms, early, late


def _first_of_each(arms: dict[int, object], wanted: list[object]) -> list[int]:
    """A contact of each of *wanted* (arms, or arm pairs), asserting the contacts include one of each."""
    chosen = []
    for want in wanted:
        found = [person for person, taken in arms.items() if taken == want and person not in chosen]
        assert found, f"no contact took {want}: {sorted(arms.values())}"
        chosen.append(found[0])
    return chosen


def test_each_split_counts_the_journeys_by_the_arm_they_took_at_that_split(app, clock):
    funnel, arms, early, late = _run(
        app,
        clock,
        SAME_NAMES,
        lambda first: _first_of_each(first, ["A", "B"]),
        # B then A twice (the arm names of the first split's A), A then A, B then B
        lambda both: _first_of_each(both, [("B", "A"), ("B", "A"), ("A", "A"), ("B", "B")]),
    )
    people = sorted(arms)
    assert len(people) == PEOPLE
    rest = [person for person in people if person not in early]
    assert all(len(arms[person]) == 1 for person in early) and all(len(arms[person]) == 2 for person in rest)
    first, second = funnel["splits"]
    converted = _by_arm(early + late, arms, 0)
    assert _compared(first) == {name: (_by_arm(people, arms, 0)[name], converted[name]) for name in "AB"}
    # A: early, and A then A; B: early, B then A twice, B then B
    assert _compared(first)["A"][1] == 2 and _compared(first)["B"][1] == 4
    assert _compared(second) == {name: (_by_arm(rest, arms, 1)[name], _by_arm(late, arms, 1)[name]) for name in "AB"}
    assert _compared(second)["A"][1] == 3 and _compared(second)["B"][1] == 1

    # the steps' figures: every journey once, whatever its arms
    split1, wait1, split2, wait2 = (step for step in funnel["steps"] if step["op"] in ("split", "wait"))
    assert (split1["reached"], wait1["reached"], wait1["goal"], wait1["passed"]) == (PEOPLE, PEOPLE, 2, PEOPLE - 2)
    assert (split2["reached"], wait2["reached"], wait2["goal"], wait2["passed"]) == (PEOPLE - 2, PEOPLE - 2, 4, 18)
    assert (funnel["entered"], funnel["goal"], funnel["completed"]) == (PEOPLE, 6, PEOPLE - 6)
    # and under each step the arm of the latest split taken, adding up to the step
    for step in (split1, wait1, split2, wait2):
        for figure in ("reached", "goal", "passed"):
            assert sum(arm[figure] for arm in step["arms"].values()) == step[figure], (step["step"], figure)
    assert {name: f["reached"] for name, f in split1["arms"].items()} == _by_arm(people, arms, 0)
    assert {name: f["reached"] for name, f in split2["arms"].items()} == _by_arm(rest, arms, 1)
    assert {name: f["goal"] for name, f in wait2["arms"].items()} == {"A": 3, "B": 1}


def test_a_goal_after_the_second_split_counts_for_the_arm_taken_at_the_first(app, clock):
    funnel, arms, _, _ = _run(
        app,
        clock,
        OTHER_NAMES,
        lambda first: [],
        # B then C: C is no arm of the first split
        lambda both: _first_of_each(both, [("B", "C"), ("B", "C")]),
    )
    people = sorted(arms)
    first, second = funnel["splits"]
    assert _compared(first) == {"A": (_by_arm(people, arms, 0)["A"], 0), "B": (_by_arm(people, arms, 0)["B"], 2)}
    assert _compared(second) == {name: (_by_arm(people, arms, 1)[name], 2 * (name == "C")) for name in "ABC"}
    # the auto-winner split keeps its own test: an assignment per journey, the arms the trace has
    assert "auto" not in first and second["auto"]["evidence"] is not None
    with app.app_context():
        assigned = Counter(get_session().scalars(select(SplitAssignment.arm)))
    assert assigned == _by_arm(people, arms, 1)


def test_journeys_moved_to_a_new_version_keep_the_arms_they_took_on_the_old_one(app, clock):
    """A new version with a step before the splits: the waiting journeys move onto it (their positions shift), take
    the second split there and reach the goal; the first split still counts them by the arm they took."""
    load_rules(app, SAME_NAMES)
    people = _signed_up(app, PEOPLE)
    load_rules(app, SAME_NAMES.replace("  split\n    30%", '  tag "new"\n  split\n    30%', 1), migrate=True)
    with app.app_context():
        session = get_session()
        newest = session.scalar(select(func.max(RuleVersion.id)))
        assert set(session.scalars(select(Enrolment.version_id))) == {newest}
    _next_day(app, clock)
    arms = _arms(app)
    late = _first_of_each({person: tuple(arms[person]) for person in people}, [("B", "A"), ("A", "A"), ("B", "A")])
    _events(app, [(person, "order.placed") for person in late])
    first, second = _funnel(app)["splits"]
    assert _compared(first) == {"A": (_by_arm(people, arms, 0)["A"], 1), "B": (_by_arm(people, arms, 0)["B"], 2)}
    assert _compared(second) == {"A": (_by_arm(people, arms, 1)["A"], 3), "B": (_by_arm(people, arms, 1)["B"], 0)}


def test_a_rule_of_more_splits_than_the_keys_hold_is_counted_and_says_which_splits_are_not_compared(app, clock):
    steps = "".join(f'  split\n    50%: tag "a{n}"\n    50%: tag "b{n}"\n  end\n' for n in range(MAX_SPLITS + 1))
    load_rules(app, f'rule "Twice"\nwhen signup.done then\n{steps}end\n')
    _signed_up(app, 3)
    funnel = _funnel(app)  # PostgreSQL refuses a key past the column's 64 characters
    assert len(funnel["splits"]) == MAX_SPLITS + 1
    for split in funnel["splits"][:MAX_SPLITS]:
        assert sum(arm["exposed"] for arm in split["arms"]) == 3 and "error" not in split["comparison"]
    last = funnel["splits"][-1]
    assert f"comes after the rule's first {MAX_SPLITS}" in last["comparison"]["error"]
    assert funnel["completed"] == 3 and all(step["reached"] == 3 for step in funnel["steps"] if step["op"] == "split")
    with app.app_context():
        assert max(len(arm) for arm in get_session().scalars(select(StatCounter.arm))) == MAX_SPLITS


def test_counters_stored_before_these_keys_are_read_at_the_split_nearest_before_their_step(app):
    """A rule of two splits counted before: the name of the last arm taken. The splits' samples are exact; a goal
    counts for the split nearest before it."""
    load_rules(app, SAME_NAMES)
    with app.app_context():
        session = get_session()
        rule = session.scalar(select(Rule))
        version = session.scalar(select(RuleVersion))
        split1, wait1, split2, wait2 = (op["id"] for op in version.plan["steps"] if op["op"] in ("split", "wait"))
        rows = [
            (split1, "A", "reached", 3),
            (split1, "B", "reached", 7),
            (wait1, "B", "exit:goal", 1),
            (split2, "A", "reached", 6),
            (split2, "B", "reached", 3),
            (wait2, "A", "exit:goal", 2),
        ]
        session.execute(
            insert(StatCounter.__table__),
            [
                {"rule_id": rule.id, "version_id": version.id, "step": s, "arm": a, "day": 1, "metric": m, "count": n}
                for s, a, m, n in rows
            ],
        )
        session.commit()
        first, second = rule_funnel(session, "Twice")["splits"]
    assert _compared(first) == {"A": (3, 0), "B": (7, 1)}
    assert _compared(second) == {"A": (6, 2), "B": (3, 0)}
