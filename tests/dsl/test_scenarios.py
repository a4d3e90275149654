"""The worked scenarios' rules files (tests/scenarios) build cleanly, as the simulator sees them.

As tests/scenarios/README.md says, simulation knows every contact field
named in the timeline (ISO-date strings are dates) and every template name.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import dsl

from .helpers import words

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
RULES = sorted(SCENARIOS.glob("*/rules.nudge"))
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T")


def timeline_fields(folder: Path) -> dict[str, str]:
    """Contact fields set in a scenario's timeline, typed as the simulator types them."""
    fields: dict[str, str] = {}
    timeline = folder / "timeline.jsonl"
    for line in timeline.read_text().splitlines() if timeline.exists() else []:
        entry = json.loads(line)
        for name, value in entry.get("set", {}).items():
            if isinstance(value, str) and ISO_DATE.match(value):
                fields.setdefault(name, "date")
            elif isinstance(value, str) and ISO_DATETIME.match(value):
                fields.setdefault(name, "datetime")
            elif isinstance(value, bool):
                fields.setdefault(name, "bool")
            elif isinstance(value, (int, float)):
                fields.setdefault(name, "number")
            else:
                fields.setdefault(name, "any")
    return fields


def test_the_scenarios_are_there():
    assert len(RULES) >= 6, SCENARIOS


@pytest.mark.parametrize("path", RULES, ids=[p.parent.name for p in RULES])
def test_scenario_rules_parse_check_and_compile(path: Path):
    source = path.read_text(encoding="utf-8")
    vocabulary = words().with_fields(
        {k: v for k, v in timeline_fields(path.parent).items() if k not in dsl.BUILTIN_CONTACT_FIELDS}
    )
    built = dsl.build(source, str(path), vocabulary)
    errors = [d.format(source) for d in built.diagnostics if d.is_error]
    assert not errors, "\n\n".join(errors)
    assert json.loads(json.dumps(built.plan)) == built.plan
    assert dsl.parse(dsl.fmt(source), str(path)).program == built.program


def test_one_liner_scenario_compiles_to_the_expected_plan():
    path = SCENARIOS / "one_liner" / "rules.nudge"
    (rule,) = dsl.build(path.read_text(), "rules.nudge", words()).plan["rules"]
    assert rule["name"] == "rules.nudge:1"
    assert rule["trigger"] == {"kind": "event", "event": "form.submitted"}
    assert rule["condition"] == {"not": {"has_tag": "vip"}}
    assert [(s["op"], s.get("name") or s.get("seconds")) for s in rule["steps"]] == [
        ("send", "welcome"),
        ("wait", 259200),
        ("send", "reminder"),
        ("exit", None),
    ]


def test_trial_followup_scenario_is_indexed_by_event_kind():
    path = SCENARIOS / "trial_followup" / "rules.nudge"
    (rule,) = dsl.build(path.read_text(), "rules.nudge", words()).plan["rules"]
    assert rule["match"] == [["event.kind", "trial"]]
