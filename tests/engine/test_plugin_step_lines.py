"""Saving rules reads a broken line that starts with a plugin's step as that step's line, not as a misspelling."""

from __future__ import annotations

import dsl
from server.engine.rules import check_sources

#: a plugin step whose name is one letter from the built-in `set`
VOCABULARY = dsl.Vocabulary(channels={}, events=None, contact_fields={}, steps=frozenset({"sent"}))
BROKEN = 'rule "Push"\nwhen form.submitted then\n  sent "deal" )\nend\n'


def test_a_plugin_steps_broken_line_is_named_for_what_broke_it_as_text_and_as_bytes():
    """It was 'unknown step "sent" — did you mean "set"?' with a fix that would have replaced the plugin's step."""
    for source in (BROKEN, BROKEN.encode()):
        checked = check_sources([("push.nudge", source)], lambda filename: VOCABULARY)
        assert [d.message for d in checked.diagnostics] == [
            "expected a value or condition or the end of the line, found `)`"
        ]
        assert checked.diagnostics[0].replacement is None


def test_a_misspelt_built_in_step_is_still_named_beside_the_plugins_steps():
    checked = check_sources([("push.nudge", BROKEN.replace("sent", "sned"))], VOCABULARY)
    assert [(d.message, d.replacement) for d in checked.diagnostics] == [
        ('unknown step "sned" — did you mean "send"?', "send")
    ]
