"""The checker against a vocabulary: names, types, structure, warnings."""

from __future__ import annotations

import pytest

import dsl
from dsl.checker import placeholder_problem
from dsl.vocabulary import BUILTIN_EVENTS

from .helpers import diagnostics_text, parsed, vocab


def problems(text: str, vocabulary: dsl.Vocabulary | None = None) -> list[str]:
    return diagnostics_text(text, vocabulary)


def test_default_vocabulary():
    words = dsl.Vocabulary.default()
    assert words.channels == {} and words.quiet_hours == {} and words.namespaces == frozenset()
    assert words.events == BUILTIN_EVENTS
    assert {"contact.created", "score.changed", "tag.added"} <= BUILTIN_EVENTS
    assert not {"sms.opted_out", "email.unsubscribed"} & BUILTIN_EVENTS  # a channel's: its plugin declares them
    assert words.contact_fields["score"] == "number"
    assert words.contact_fields["birthday"] == "date"
    assert words.contact_fields["last_seen"] == "datetime"
    assert set(words.contact_fields) == {
        "external_id",
        "email",
        "phone",
        "first_name",
        "last_name",
        "timezone",
        "locale",
        "stage",
        "score",
        "created_at",
        "updated_at",
        "last_seen",
        "birthday",
    }


def test_clean_program_has_no_problems():
    assert problems('rule "R"\nwhen contact.created and contact.score > 3 then\n  send email welcome\nend') == []


def test_custom_events_are_legal_and_typos_of_known_ones_are_warnings():
    words = vocab().with_events({"class.attended"})
    assert problems("when member.joined then stop", words) == []
    assert problems("when class.atended then stop", words) == [
        '1:6: warning: unknown event "class.atended" — did you mean "class.attended"?'
    ]


def test_misspelt_builtin_events_are_errors():
    assert problems("when sms.opted_ot then stop") == [
        '1:6: unknown event "sms.opted_ot" — did you mean "sms.opted_out"?'
    ]
    assert problems("when contact.deleted then stop")[0].startswith('1:6: unknown event "contact.deleted"')


def test_events_none_accepts_any_name():
    words = dsl.Vocabulary(channels={}, events=None, contact_fields={})
    assert problems("when email.opend then stop", words) == []


def test_templates_none_accepts_any_name_and_a_set_restricts():
    assert problems("when a.b then send email anything") == []
    words = vocab().with_templates("email", {"welcome"})
    assert problems("when a.b then send email welcom", words) == [
        '1:26: unknown email template "welcom" — did you mean "welcome"?'
    ]


def test_plugin_steps_are_accepted_when_registered():
    assert problems('when a.b then crm_push "deals"') == ['1:15: unknown step "crm_push"']
    words = vocab()
    words = dsl.Vocabulary(
        channels=words.channels, events=None, contact_fields=words.contact_fields, steps=frozenset({"crm_push"})
    )
    assert problems('when a.b then crm_push "deals"', words) == []
    assert problems('when a.b then crm_psuh "deals"', words) == [
        '1:15: unknown step "crm_psuh" — did you mean "crm_push"?'
    ]


def test_start_knows_the_rules_of_the_file_and_of_the_vocabulary():
    words = dsl.Vocabulary(channels={}, events=None, contact_fields={}, rules=frozenset({"Active"}))
    text = 'rule "Here"\nwhen a.b then\n  start "Here"\n  start "Active"\n  start "Gone"\nend'
    assert problems(text, words) == ['5:9: unknown rule "Gone"']
    assert problems(text, dsl.Vocabulary(channels={}, events=None, contact_fields={})) == []


def test_segments():
    words = dsl.Vocabulary(channels={}, events=None, contact_fields={}, segments=frozenset({"trial"}))
    assert problems('when a.b and in segment "trial" then stop', words) == []
    assert problems('when a.b and in segment "trail" then stop', words) == [
        '1:25: unknown segment "trail" — did you mean "trial"?'
    ]


def test_unknown_paths_and_bare_event_outside_event_rules():
    assert problems("when a.b and foo.bar == 1 then stop") == ["1:14: unknown name `foo.bar`"]
    assert problems("when every day and event.x == 1 then stop") == ["1:20: `event.x` has no event to refer to"]
    assert problems("when every day and did a.b where event.x == 1 within 1d then stop") == []


def test_builtin_event_properties_are_typed():
    assert problems("when score.changed and event.old < 30 and event.new >= 30 then stop") == []
    assert problems('when score.changed and event.new == "high" then stop') == [
        "1:24: cannot compare a number with a string"
    ]


@pytest.mark.parametrize(
    "condition, message",
    [
        ('contact.created_at > "3d"', "cannot compare a date-time with a string"),
        ("now - contact.created_at > 3", "cannot compare a duration with a number"),
        ("contact.score + 1d > 3", "cannot add a number and a duration"),
        ("1d - now > 3d", "cannot subtract a date-time from a duration"),
        ("contact.email > true", "`>` cannot order true/false"),
        ('contact.score contains "a"', "`contains` needs a string or a list, not a number"),
        ("contact.email starts with 1", "`starts with` works on strings, not a number"),
        ('contact.score matches "a"', "`matches` works on strings, not a number"),
        ("contact.email", "this condition is a string, not true or false"),
        ("not contact.score", "`not` needs a condition; this is a number"),
        ('"a" is set', "only a field or an event property can be set or not"),
        ('contact.email in ["a", 1]', "this list item is a number, but the value looked for is a string"),
        ("did a.b at least 0 times within 1d", "`at least` needs a whole number of times, 1 or more"),
        ('contact.email matches "(x"', "the pattern is not a valid regular expression"),
    ],
)
def test_type_errors(condition, message):
    found = problems(f"when a.b and {condition} then stop")
    assert any(message in line for line in found), found


@pytest.mark.parametrize(
    "condition",
    [
        "contact.last_seen < now - 14d",
        "contact.birthday == today",
        "contact.birthday < contact.last_seen",
        "now - contact.last_seen > 3d",
        "contact.renewal_date - 7d <= today",
        'contact.tags_list contains "x"',
        'contact.meta > 3 and contact.meta == "x"',
        'event.anything == 1 and event.anything == "x"',
        "contact.vip",
        'tag in ["a", "b"] and tag not in ["c"]',
    ],
)
def test_well_typed_conditions(condition):
    assert problems(f"when a.b and {condition} then stop") == []


def test_wait_until_needs_a_date_or_time():
    assert problems("when a.b then wait until contact.renewal_date - 7d") == []
    assert problems("when a.b then wait until now + 1h") == []
    assert problems('when a.b then wait until "tomorrow"') == [
        "1:26: `wait until` needs a date or a time, not a string"
    ]


def test_date_triggers_need_date_fields():
    assert problems("when anniversary of contact.birthday then stop") == []
    assert problems("when 7d before contact.renewal_date then stop") == []
    assert problems("when 7d before contact.stage then stop") == [
        "1:16: `before` needs a date field; `contact.stage` is a string"
    ]


def test_set_checks_the_field_and_the_value():
    assert problems('when a.b then set contact.stage = "sql"') == []
    assert problems("when a.b then set contact.stage = null") == []
    assert problems("when a.b then set contact.stgae = 1") == [
        '1:19: unknown contact field "stgae" — did you mean "stage"?'
    ]
    assert problems("when a.b then set contact.birthday = 3d") == [
        "1:38: `contact.birthday` holds a date, not a duration"
    ]


def test_unreachable_steps_after_stop_in_every_shape():
    assert problems('when a.b then\n  stop\n  tag "x"\n  tag "y"\nend') == [
        "3:3: this step can never run: the journey stops before it"
    ]
    assert problems('when a.b then\n  if contact.vip then\n    stop\n  end\n  tag "x"\nend') == []
    assert problems(
        'when a.b then\n  wait for c.d up to 1d then\n    stop\n  else\n    stop\n  end\n  tag "x"\nend'
    ) == ["7:3: this step can never run: the journey stops before it"]
    assert problems('when a.b then\n  if contact.vip then\n    stop\n    tag "x"\n  end\nend') == [
        "4:5: this step can never run: the journey stops before it"
    ]


def test_sms_without_quiet_hours_warns_once_per_rule():
    text = "when a.b then\n  send sms one\n  send sms two\nend"
    assert problems(text) == ["2:3: warning: `send sms` in a rule without `quiet hours`"]
    assert problems('rule "R"\n  quiet hours 20:00-09:00\n' + text) == []


def test_diagnostic_hint_for_sms_quiet_hours():
    program = parsed("when a.b then send sms hi")
    (warning,) = dsl.check(program, vocab())
    assert "21:00–08:00" in warning.hint and "quiet hours" in warning.hint


def test_a_channels_default_quiet_hours_and_events_come_from_the_vocabulary():
    from dataclasses import replace

    plain = replace(dsl.Vocabulary.default(), channels={"push": None, "sms": None}, raised=None)
    assert problems("when a.b then send push hi\nwhen push.opend then stop", plain) == []
    words = replace(
        plain,
        quiet_hours={"push": ("22:00", "07:00")},
        namespaces=frozenset({"push"}),
        events=plain.events | {"push.opened"},
    )
    (warning, error) = dsl.check(parsed("when a.b then send push hi\nwhen push.opend then stop"), words)
    assert warning.message == "`send push` in a rule without `quiet hours`" and "22:00–07:00" in warning.hint
    assert error.message == 'unknown event "push.opend" — did you mean "push.opened"?'
    assert problems("when a.b then send sms hi", words) == []  # only the channels that declare a window


def test_warnings_do_not_block_the_build():
    built = dsl.build("when a.b then send sms hi", "x.nudge", vocab())
    assert built.plan is not None and len(built.diagnostics) == 1
    broken = dsl.build("when a.b then send smss hi", "x.nudge", vocab())
    assert broken.plan is None and broken.program is not None


@pytest.mark.parametrize(
    "text, problem",
    [
        ("Hi {{ contact.first_name }}!", None),
        ("{{ a }} and {{ b }}", None),
        ("no placeholders", None),
        ("{{ a", "`{{` is never closed with `}}`"),
        ("a }}", "`}}` without a matching `{{`"),
        ("{{ {{ a }} }}", "placeholders cannot nest: `{{` inside `{{ … }}`"),
        ("{{}}", "empty placeholder `{{ }}`"),
    ],
)
def test_placeholders_must_balance(text, problem):
    assert placeholder_problem(text) == problem


def test_diagnostics_are_sorted_by_position():
    found = dsl.check(parsed('when a.b then\n  send smss x\n  tag ""\n  sned x\nend'), vocab())
    assert [(d.line, d.col) for d in found] == sorted((d.line, d.col) for d in found)
    assert len(found) == 3


def test_check_never_raises_on_generated_programs():
    from hypothesis import given, settings

    from . import strategies

    @settings(max_examples=40, deadline=None)
    @given(strategies.program)
    def run(program):
        for diagnostic in dsl.check(program, vocab()):
            assert diagnostic.message

    run()


def test_names_longer_than_the_engine_stores_are_refused_where_they_are():
    """A rule name, tag or team past its column's size passed the checker and failed on PostgreSQL when stored."""
    rule = 'rule "{}"\nwhen member.joined then\n  tag "{}"\n  task "Call" for "{}"\nend\n'
    assert problems(rule.format("r" * 256, "t" * 129, "q" * 129)) == [
        "1:6: a rule's name has at most 255 characters (this one has 256)",
        "3:7: a tag has at most 128 characters (this one has 129)",
        "4:19: a team's name has at most 128 characters (this one has 129)",
    ]
    assert problems(rule.format("r" * 255, "t" * 128, "q" * 128)) == []


def test_a_diagnostic_formats_alike_from_the_text_or_its_lines():
    """A caller formatting the diagnostics of a long file passes its lines, split once (a split per diagnostic made
    saving 3,000 rules quadratic)."""
    text = 'rule "a"\nwhen form.submitted then\n  tag "x"\n  sned email welcome\nend\n'
    found = dsl.build(text, "rules.nudge", vocab()).diagnostics
    assert found
    for diagnostic in found:
        assert diagnostic.format(text.split("\n")) == diagnostic.format(text)
        assert "sned" in diagnostic.format(text.split("\n"))


@pytest.mark.parametrize(
    "condition",
    ['has tag "{}"', 'tag == "{}"', 'tag != "{}"', 'tag in ["vip", "{}"]', 'tag not in ["{}"]'],
)
def test_tags_longer_than_the_engine_stores_are_refused_in_conditions(condition: str):
    """`tag "…"` refused a tag past 128 characters, but a condition testing one passed: it can never be true."""
    text = f"when member.joined and {condition.format('t' * 129)} then stop"
    found = dsl.build(text, "f.nudge", vocab()).diagnostics
    assert [(d.line, d.col, d.message) for d in found] == [
        (1, 24 + condition.index('"{}"'), "a tag has at most 128 characters (this one has 129)")
    ]
    step = dsl.build('when member.joined then tag "{}"'.format("t" * 129), "f.nudge", vocab()).diagnostics
    assert found[0].hint == step[0].hint
    assert problems(f"when member.joined and {condition.format('t' * 128)} then stop") == []
    segment = dsl.parse_condition(condition.format("t" * 129), vocabulary=vocab()).diagnostics
    assert [d.message for d in segment] == [found[0].message]
