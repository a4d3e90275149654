"""What rules may name on this instance, for the language checker: one place, used by every way rules are saved."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Template, WebhookEndpoint


def instance_vocabulary(session: Session, plugins: Any, extra_templates: Iterable[tuple[str, str]] = (),
                        extra_endpoints: Iterable[str] = ()) -> Any:
    """Channels, steps and events from the plugins; templates, webhook endpoints, custom fields, segments
    and rule names from the database; plus templates and endpoints about to be saved with the rules.
    """
    from ..segments import vocabulary as stored

    base = stored(session)  # built-in events and fields, custom field definitions, segment names
    parts = plugins.vocabulary_parts()
    from .render import BUILTIN

    names: dict[str, set[str]] = {channel: set(BUILTIN.get(channel, ())) for channel in parts["channels"]}
    for channel, name in session.execute(select(Template.channel, Template.name)):
        names.setdefault(channel, set()).add(name)
    for channel, name in extra_templates:
        names.setdefault(channel, set()).add(name)
    endpoints = set(session.scalars(select(WebhookEndpoint.name))) | set(extra_endpoints)
    if "webhook" in names or endpoints:
        names.setdefault("webhook", set()).update(endpoints)
    return replace(base, channels={channel: frozenset(found) for channel, found in names.items()},
                   events=frozenset(base.events or ()) | frozenset(parts["events"]),
                   steps=frozenset(base.steps) | frozenset(parts["actions"]), rules=None)


__all__ = ["instance_vocabulary"]
