"""`wait until HH:MM` waits for the next such time after now: on the virtual clock as in production."""

from __future__ import annotations

import json

from server.simulation import simulate

RULES = """rule "Two mornings"
when trial.started then
  wait until 09:00
  send email day_one
  wait until 09:00
  send email day_two
end
"""


def sends(timeline: list[dict]) -> list[tuple[str, str]]:
    effects = simulate(
        [("mornings.nudge", RULES)], [json.dumps(line) for line in timeline], until="2026-05-10T00:00:00Z"
    )
    return [(e["at"], e["template"]) for e in effects if e["action"] == "send"]


def person(at: str) -> dict:
    return {"at": at, "contact": "ana", "set": {"email": "ana@example.com", "timezone": "UTC"}}


def test_a_second_wait_until_the_same_time_waits_for_the_next_day():
    """The timer of the first wait fires at 09:00:00 exactly on the virtual clock; the second wait then went on at
    once (both mails at once), while a worker, a moment late as always, waited for the next morning."""
    started = [
        person("2026-05-04T10:00:00Z"),
        {"at": "2026-05-04T10:00:00Z", "contact": "ana", "event": "trial.started"},
    ]
    assert sends(started) == [("2026-05-05T09:00:00Z", "day_one"), ("2026-05-06T09:00:00Z", "day_two")]


def test_a_journey_reaching_the_wait_at_that_very_second_waits_for_the_next_one():
    started = [
        person("2026-05-04T08:00:00Z"),
        {"at": "2026-05-04T09:00:00Z", "contact": "ana", "event": "trial.started"},
    ]
    assert sends(started) == [("2026-05-05T09:00:00Z", "day_one"), ("2026-05-06T09:00:00Z", "day_two")]


def test_a_journey_reaching_the_wait_before_that_time_goes_on_the_same_day():
    started = [
        person("2026-05-04T08:00:00Z"),
        {"at": "2026-05-04T08:59:59Z", "contact": "ana", "event": "trial.started"},
    ]
    assert sends(started) == [("2026-05-04T09:00:00Z", "day_one"), ("2026-05-05T09:00:00Z", "day_two")]
