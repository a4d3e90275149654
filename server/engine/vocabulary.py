"""What rules may name on this instance, for the language checker: one place, used by every way rules are saved."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import ContactTag, Event, Rule, Template, WebhookEndpoint

#: events Nudge raises itself beyond the language's built-ins: its forms (``/f/<slug>``) and site tracking
CORE_EVENTS = frozenset({"form.submitted", "page.visited"})
#: how many of the latest events are searched for names already received (a bound on a large table)
RECENT_EVENTS = 100_000
#: at most this many tags in use are offered to the editor's completion
MAX_TAGS = 1000


def plugin_vocabulary(plugins: Any) -> Any:
    """Nudge's built-ins with what the plugins register (channels with their built-in templates, steps, events,
    quiet hours, condition functions): what ``nudge check`` knows without an instance. Nothing has been received
    yet, so every other custom event is flagged."""
    import dsl

    parts = plugins.vocabulary_parts()
    base = dsl.Vocabulary.default()
    channels = {name: frozenset(plugins.channels[name].builtin_templates) for name in parts["channels"]}
    return replace(
        base,
        channels=channels,
        events=frozenset(base.events or ()) | CORE_EVENTS | frozenset(parts["events"]),
        steps=frozenset(base.steps) | frozenset(parts["actions"]),
        raised=frozenset(),
        rules=frozenset(),  # `start` may name the rules checked with it (``check_sources`` adds them), nothing else
        namespaces=frozenset(parts["namespaces"]),
        quiet_hours=dict(parts["quiet_hours"]),
        functions=dict(plugins.condition_functions),
    )


def with_templates(vocabulary: Any, templates: Iterable[tuple[str, str]] = ()) -> Any:
    """*vocabulary* that also knows these ``(channel, name)`` templates (an endpoint channel's endpoints too)."""
    names = {channel: set(known or ()) for channel, known in vocabulary.channels.items()}
    for channel, name in templates:
        names.setdefault(channel, set()).add(name)
    return replace(vocabulary, channels={channel: frozenset(found) for channel, found in names.items()})


def endpoint_names(session: Session, plugins: Any) -> list[tuple[str, str]]:
    """The stored endpoints as ``(channel, name)`` for every channel that sends to endpoints."""
    channels = [name for name, cls in sorted(plugins.channels.items()) if cls.endpoints]
    names = list(session.scalars(select(WebhookEndpoint.name))) if channels else []
    return [(channel, name) for channel in channels for name in names]


def instance_vocabulary(session: Session, plugins: Any, extra_templates: Iterable[tuple[str, str]] = ()) -> Any:
    """Channels, steps, events and condition functions from the plugins; templates, endpoints, custom fields,
    segments, rule names and the event names received so far from the database; plus templates (and endpoints)
    about to be saved with the rules.
    """
    from ..segments import vocabulary as stored

    base = stored(session)  # built-in events and fields, custom field definitions, segment names
    offline = plugin_vocabulary(plugins)
    templates = [
        *session.execute(select(Template.channel, Template.name)),
        *endpoint_names(session, plugins),
        *extra_templates,
    ]
    recent = select(Event.name).order_by(Event.id.desc()).limit(RECENT_EVENTS).subquery()
    received = frozenset(session.scalars(select(recent.c.name).distinct()))
    vocabulary = replace(
        offline,
        events=offline.events | frozenset(base.events or ()),
        steps=offline.steps | frozenset(base.steps),
        contact_fields=base.contact_fields,
        segments=base.segments,
        rules=frozenset(session.scalars(select(Rule.name))),  # and the rules saved with it (``check_sources``)
        raised=received,
    )
    return with_templates(vocabulary, templates)


def signature(function: Any) -> str:
    """A condition function as the editor shows it: ``domain(string) → string``."""
    return f"{function.name}({', '.join(function.params)}) → {function.result}"


def editor_words(session: Session, plugins: Any) -> dict[str, Any]:
    """What the rule editor completes, from the same vocabulary the checker uses: events (built in, plugin-declared,
    received), contact fields (standard and custom, without ``contact.``), tags in use, templates per channel,
    segments, channels, plugin steps and condition functions (name and description)."""
    words = instance_vocabulary(session, plugins)
    tags = session.scalars(select(ContactTag.tag).distinct().order_by(ContactTag.tag).limit(MAX_TAGS))
    return {
        "events": sorted(set(words.events or ()) | set(words.raised or ())),
        "fields": sorted(words.contact_fields),
        "tags": list(tags),
        "templates": {channel: sorted(names or ()) for channel, names in sorted(words.channels.items())},
        "segments": sorted(words.segments or ()),
        "channels": sorted(words.channels),
        "steps": [
            {"name": name, "detail": getattr(action, "description", "") or f"plugin step {name}"}
            for name, action in sorted(plugins.actions.items())
        ],
        "functions": [
            {"name": name, "detail": signature(function)} for name, function in sorted(words.functions.items())
        ],
    }


__all__ = [
    "CORE_EVENTS",
    "editor_words",
    "endpoint_names",
    "instance_vocabulary",
    "plugin_vocabulary",
    "with_templates",
]
