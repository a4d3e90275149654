"""Placeholders in note, task and notify texts use the same bounded sandbox as messages."""

import json

from server.simulation import simulate

TIMELINE = [
    json.dumps({"at": "2026-05-01T09:00:00Z", "contact": "c", "set": {"email": "c@example.com", "first_name": "Cleo"}}),
    json.dumps({"at": "2026-05-01T10:00:00Z", "contact": "c", "event": "lead.hot", "props": {"src": "ad"}}),
]


def test_placeholders_render_and_a_hostile_one_leaves_the_text_as_written():
    hostile = "{{ range(10**9) | list }}"
    rules = (
        'rule "Notes"\nwhen lead.hot then\n  note "Hi {{ contact.first_name }} via {{ event.src }}"\n'
        f'  note "{hostile}"\n  notify "sales" "{{{{ \'\'.__class__.__mro__ }}}}"\n  tag "done"\nend\n'
    )
    effects = simulate([("rules.nudge", rules)], TIMELINE)
    notes = [e["text"] for e in effects if e["action"] == "note"]
    assert notes == ["Hi Cleo via ad", hostile]
    [notify] = [e for e in effects if e["action"] == "notify"]
    assert "__mro__" in notify["text"] and "object" not in notify["text"]  # refused, not rendered
    assert any(e["action"] == "tag" for e in effects)  # the journey went on
