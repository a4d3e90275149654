"""What a program may name: channels and templates, events, contact fields …

The engine builds a :class:`Vocabulary` from its plugins and database and
hands it to the checker; ``dsl`` itself knows only Nudge's built-ins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Protocol

FIELD_TYPES = frozenset({"string", "number", "bool", "date", "datetime", "list", "any"})

VALUE_TYPES = FIELD_TYPES | {"duration", "time"}
"""The types a condition function's parameters and result may have."""

SQL_TYPES = frozenset({"string", "number", "bool"})
"""The types of parameters and results a function with an SQL form may have."""

RESERVED_FUNCTION_NAMES = frozenset({"true", "false", "null", "tag", "now", "today", "not", "has", "in", "did"})
"""Words that are keywords wherever a value may start, so they cannot name a function."""

BUILTIN_STEPS = (
    "send",
    "wait",
    "if",
    "split",
    "tag",
    "untag",
    "set",
    "score",
    "note",
    "task",
    "notify",
    "start",
    "stop",
)
"""The language's own step keywords (a plugin's steps come with the vocabulary the engine builds)."""

BUILTIN_CONTACT_FIELDS: Mapping[str, str] = MappingProxyType(
    {
        "external_id": "string",
        "email": "string",
        "phone": "string",
        "first_name": "string",
        "last_name": "string",
        "timezone": "string",
        "locale": "string",
        "stage": "string",
        "score": "number",
        "created_at": "datetime",
        "updated_at": "datetime",
        "last_seen": "datetime",
        "birthday": "date",
    }
)

#: the fields Nudge keeps itself, which a rule's `set` may not change (`last_seen` moves only with the person's
#: own events, and never back)
READ_ONLY_FIELDS = frozenset({"external_id", "created_at", "updated_at", "last_seen"})

#: the language's own events; a channel's (``<channel>.delivered`` …) come with the vocabulary the engine builds
BUILTIN_EVENTS = frozenset(
    {
        "contact.created",
        "contact.updated",
        "tag.added",
        "tag.removed",
        "score.changed",
    }
)

RESERVED_EVENT_NAMESPACES = frozenset(name.split(".")[0] for name in BUILTIN_EVENTS)
"""First segments only Nudge may use: ``tag.addde`` is a typo, not a custom event (a vocabulary adds its
channels' :attr:`Vocabulary.namespaces`)."""

BUILTIN_EVENT_PROPS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "score.changed": {"old": "number", "new": "number"},
        "tag.added": {"tag": "string"},
        "tag.removed": {"tag": "string"},
    }
)


class Function(Protocol):
    """A condition function as the language sees it (``server.sdk.ConditionFunction`` is one).

    ``name``, ``params`` (one type of :data:`VALUE_TYPES` per parameter) and ``result`` are what
    the checker types calls with; ``implementation`` is what :mod:`dsl.evaluate` calls (None
    while only checking); ``sql`` maps a dialect (``sqlite``, ``postgresql``) to the function's
    SQL form, and a condition that must run as SQL (a segment) may only call functions with one.
    """

    @property
    def name(self) -> str: ...

    @property
    def params(self) -> tuple[str, ...]: ...

    @property
    def result(self) -> str: ...

    @property
    def implementation(self) -> Callable[..., Any] | None: ...

    @property
    def sql(self) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class Signature:
    """A plain :class:`Function` (for tests and embedders; plugins declare ``server.sdk.ConditionFunction``)."""

    name: str
    params: tuple[str, ...]
    result: str
    implementation: Callable[..., Any] | None = None
    sql: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Vocabulary:
    """The names a program is checked against.

    :param channels: channel -> known template or endpoint names; None accepts any name.
    :param events: known event names; None accepts any well-formed name.
    :param contact_fields: field -> type (one of :data:`FIELD_TYPES`).
    :param steps: extra step keywords registered by plugins.
    :param segments: known segment names; None accepts any.
    :param rules: names usable in ``start "Other rule"`` (besides the file's own); None accepts any.
    :param raised: custom event names something is known to raise (received by the instance, used by
        more than one rule); every other custom event gets a warning. None: nothing is known, so only
        a near miss of a known event is flagged.
    :param functions: condition functions by name (:class:`Function`), from the plugins.
    :param namespaces: first segments of event names that belong to a channel (``sms``): an event there that
        :attr:`events` does not list is a typo, not a custom event.
    :param quiet_hours: channel -> its default quiet window ``(start, end)``: a rule sending there without
        ``quiet hours`` of its own gets a warning that the channel's window applies.
    """

    channels: Mapping[str, frozenset[str] | None]
    events: frozenset[str] | None
    contact_fields: Mapping[str, str]
    steps: frozenset[str] = frozenset()
    segments: frozenset[str] | None = None
    rules: frozenset[str] | None = None
    raised: frozenset[str] | None = None
    functions: Mapping[str, Function] = field(default_factory=dict)
    namespaces: frozenset[str] = frozenset()
    quiet_hours: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    @classmethod
    def default(cls) -> Vocabulary:
        """The language's own names: built-in events and fields, and no channel (channels come from plugins)."""
        return cls(
            channels={},
            events=BUILTIN_EVENTS,
            contact_fields=dict(BUILTIN_CONTACT_FIELDS),
        )

    def is_open(self, event: str) -> bool:
        """Whether *event* is a channel's ``<channel>.opened``: raised by a tracking pixel, which image proxies
        and privacy features load for nobody (a rule waiting for one gets a warning)."""
        namespace, _, name = event.partition(".")
        return name == "opened" and namespace in self.namespaces

    @property
    def reserved(self) -> frozenset[str]:
        """Event namespaces only Nudge and its channels may use."""
        return RESERVED_EVENT_NAMESPACES | self.namespaces

    def with_templates(self, channel: str, names: Iterable[str]) -> Vocabulary:
        """A copy where ``channel`` knows exactly ``names``."""
        channels = dict(self.channels)
        channels[channel] = frozenset(names)
        return replace(self, channels=channels)

    def with_fields(self, fields: Mapping[str, str]) -> Vocabulary:
        """A copy with more contact fields (custom fields from the database)."""
        merged = dict(self.contact_fields)
        merged.update(fields)
        return replace(self, contact_fields=merged)

    def with_functions(self, functions: Iterable[Function]) -> Vocabulary:
        """A copy that also knows ``functions`` (condition functions from plugins)."""
        merged = dict(self.functions)
        merged.update((function.name, function) for function in functions)
        return replace(self, functions=merged)

    def with_raised(self, events: Iterable[str]) -> Vocabulary:
        """A copy that also takes ``events`` as raised (no "nothing raises it" warning for them)."""
        return replace(self, raised=(self.raised or frozenset()) | frozenset(events))

    def with_events(self, events: Iterable[str]) -> Vocabulary:
        """A copy that also knows ``events`` (custom events seen so far)."""
        if self.events is None:
            return self
        return replace(self, events=self.events | frozenset(events))
