"""Shared helpers for the language tests."""

from __future__ import annotations

from dataclasses import replace

import dsl


def parsed(text: str, filename: str = "rules.nudge") -> dsl.Program:
    """The program for ``text``; fails the test with the diagnostics if it does not parse."""
    result = dsl.parse(text, filename)
    assert result.program is not None, "\n".join(d.format(text) for d in result.diagnostics)
    return result.program


def diagnostics_text(text: str, vocabulary: dsl.Vocabulary | None = None, filename: str = "rules.nudge") -> list[str]:
    """Every diagnostic for ``text`` (syntax, then checks) as ``line:col: message``."""
    result = dsl.parse(text, filename)
    found = list(result.diagnostics)
    if result.program is not None:
        found += dsl.check(result.program, vocabulary or vocab())
    return [f"{d.line}:{d.col}: {'' if d.is_error else 'warning: '}{d.message}" for d in found]


#: the events Nudge's built-in channel plugins declare (the engine hands them to the checker)
CHANNEL_EVENTS = frozenset(
    {
        "email.delivered",
        "email.opened",
        "email.clicked",
        "email.bounced",
        "email.complained",
        "email.unsubscribed",
        "sms.delivered",
        "sms.failed",
        "sms.replied",
        "sms.opted_out",
        "sms.opted_in",
    }
)


def with_channels(vocabulary: dsl.Vocabulary) -> dsl.Vocabulary:
    """*vocabulary* with what the built-in channel plugins declare: their names (any template), events, event
    namespaces and SMS's default quiet hours, as ``server.engine.vocabulary`` builds it from their classes."""
    return replace(
        vocabulary,
        channels={"email": None, "sms": None, "webhook": None, **vocabulary.channels},
        events=None if vocabulary.events is None else vocabulary.events | CHANNEL_EVENTS,
        namespaces=vocabulary.namespaces | {"email", "sms"},
        quiet_hours={"sms": ("21:00", "08:00"), **vocabulary.quiet_hours},
    )


def words() -> dsl.Vocabulary:
    """The language's own names plus the built-in channels'."""
    return with_channels(dsl.Vocabulary.default())


def vocab(**fields: str) -> dsl.Vocabulary:
    """The default vocabulary with the built-in channels, plus custom contact fields."""
    vocabulary = words()
    extra = {
        "renewal_date": "date",
        "trial_ends": "date",
        "plan": "string",
        "vip": "bool",
        "tags_list": "list",
        "visits": "number",
        "meta": "any",
    }
    extra.update(fields)
    return vocabulary.with_fields(extra)
