"""The small, stable API that plugins import (standard library only).

A channel is a class with a ``name``, an optional ``config_schema`` and a
``send(message) -> SendResult`` method. It raises :class:`ChannelError` with
``permanent=True`` for failures that will never succeed (invalid address,
unsubscribed at the provider) and ``permanent=False`` for ones worth retrying;
the engine, not the plugin, decides about retries.

Besides channels, plugins provide triggers (:class:`Trigger`: event sources),
actions (:class:`Action`: new steps for the rules language), functions for rule
conditions (:class:`ConditionFunction`) and report what
providers say about delivered messages as :class:`DeliveryStatus` objects,
which Nudge turns into events such as ``email.bounced``.

What a plugin learns from its provider (an opt-out by SMS, a reply) it writes through
:func:`record_consent`, :func:`raise_event` and :func:`suppress`, never through Nudge's
tables: they find the contacts by address, keep the consent ledger and the suppression
list, hand the events to the engine, and de-duplicate a provider's retried callback by
its ``receipt``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

__all__ = [
    "ADMIN_ROLES",
    "CONSENT_GRANTED",
    "CONSENT_UNLESS_REVOKED",
    "SETTING_TYPES",
    "UNSUBSCRIBE_LINK",
    "UNSUBSCRIBE_PROVIDER",
    "Action",
    "Channel",
    "ChannelError",
    "Check",
    "ConditionFunction",
    "ContactDataError",
    "DeliveryStatus",
    "Endpoint",
    "InboundSource",
    "Ingested",
    "JsonInputError",
    "OutboundMessage",
    "RateLimit",
    "Recorded",
    "SendResult",
    "SentMessage",
    "SettingError",
    "Trigger",
    "address_hash",
    "admin_page",
    "channel",
    "check_header",
    "declaration_problems",
    "disable_endpoint",
    "endpoint",
    "enqueue",
    "find_contacts",
    "find_message",
    "inbound_source",
    "ingest_event",
    "lone_surrogate",
    "parse_json",
    "problem",
    "raise_event",
    "record_consent",
    "record_status",
    "redact",
    "suppress",
    "unsubscribe",
    "validate_schema",
    "validate_settings",
]


class ChannelError(Exception):
    """A send failed.

    :param message: what went wrong, for operators (no secrets).
    :param permanent: True when retrying cannot help; the engine then fails the
        message at once and, where the plugin says so, updates the contact.
    :param ambiguous: True when the provider may have accepted the message
        (e.g. the connection dropped after the data was sent); the engine marks
        it ``unknown`` instead of resending.
    :param suppress: a reason (``bounced``, ``unsubscribed``, ``invalid_address``) to
        record against the address so no later send is attempted.
    :param retry_after: seconds the provider asked us to wait, when it said so.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        ambiguous: bool = False,
        suppress: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.ambiguous = ambiguous
        self.suppress = suppress
        self.retry_after = retry_after


@dataclass(frozen=True)
class OutboundMessage:
    """One rendered message, ready for a channel.

    ``key`` is the outbox idempotency key: stable across retries, unique per
    (enrolment, step, occurrence). Channels pass it to providers that accept an
    idempotency id and derive stable ids (e.g. the email ``Message-ID``) from it.
    ``unsubscribe_url`` is filled by the engine for every message of a channel whose ``unsubscribe`` is
    ``link``; its last path segment is the signed token :func:`unsubscribe` accepts (e.g. from a ``mailto:``
    unsubscribe the channel advertises).
    """

    key: str
    channel: str
    template: str
    to: str
    subject: str = ""
    text: str = ""
    html: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    #: every rendered part of the template by the name the channel declares (``subject``, ``txt``, ``html`` also
    #: fill the fields above)
    parts: Mapping[str, str] = field(default_factory=dict)
    unsubscribe_url: str | None = None
    marketing: bool = True
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    """What the provider said: its id for the message, when it gave one."""

    provider_id: str | None = None
    status: str = "sent"


@dataclass(frozen=True)
class RateLimit:
    """How fast a provider takes a channel's messages for one *key* (a sender number): see :meth:`Channel.rate_limit`.

    On average *per_second* messages, at most *burst* of them at the same instant. The outbox keeps to it across
    every worker and process (a token bucket in Redis) and puts a message that must wait back to ``pending`` until
    its slot, without counting an attempt.
    """

    key: str
    per_second: float
    burst: int = 1

    def __post_init__(self) -> None:
        if not self.per_second > 0:
            raise ValueError(f"a rate limit needs more than 0 messages per second, got {self.per_second!r}")
        if self.burst < 1:
            raise ValueError(f"a rate limit's burst is at least 1 message, got {self.burst!r}")


#: :attr:`Channel.consent`: a send needs no opt-out on the consent ledger
CONSENT_UNLESS_REVOKED = "unless_revoked"
#: :attr:`Channel.consent`: a send needs an opt-in on the consent ledger
CONSENT_GRANTED = "granted"
#: :attr:`Channel.unsubscribe`: a one-click link in every marketing message
UNSUBSCRIBE_LINK = "link"
#: :attr:`Channel.unsubscribe`: the recipient opts out at the provider (replies STOP, turns notifications off);
#: the plugin records it with :func:`record_consent`
UNSUBSCRIBE_PROVIDER = "provider"

#: the states of a :class:`Check`, from good to blocking
CHECK_STATUSES = ("ok", "warn", "error")


@dataclass(frozen=True)
class Check:
    """One line of ``nudge doctor`` (and of the start-up log): what was checked, how it stands, what to do.

    :param name: what was checked, e.g. ``email: postal address``.
    :param status: ``ok``, ``warn`` (unsafe, but sending works) or ``error`` (sending is blocked or will fail).
    :param detail: what was found and, unless ``ok``, what to do, naming the setting (``set NUDGE_…``).
    """

    name: str
    status: str
    detail: str

    def __post_init__(self) -> None:
        if self.status not in CHECK_STATUSES:
            raise ValueError(
                f"check {self.name!r}: status must be one of {', '.join(CHECK_STATUSES)}, not {self.status!r}"
            )


@dataclass(frozen=True)
class DeliveryStatus:
    """What a provider reported about a message or an address, as Nudge will record it.

    :param channel: the channel name (``email``).
    :param status: the event suffix (``delivered``, ``bounced`` …); the event is ``<channel>.<status>``.
    :param address: the contact address concerned, when known (used to find the contact and to suppress).
    :param provider_id: the provider's id of the message (e.g. the email ``Message-ID``), when known.
    :param message_key: the outbox key of the message, when known.
    :param suppress: a suppression reason (``bounced``, ``complained`` …) to record against the address.
    :param detail: a short human-readable explanation (provider code, diagnostic).
    :param props: extra event properties.
    :param occurred_at: when the provider says it happened (timezone-aware); default now.
    """

    channel: str
    status: str
    address: str | None = None
    provider_id: str | None = None
    message_key: str | None = None
    suppress: str | None = None
    detail: str | None = None
    props: Mapping[str, Any] = field(default_factory=dict)
    occurred_at: datetime | None = None

    @property
    def event(self) -> str:
        """The Nudge event this status becomes, e.g. ``email.bounced``."""
        return f"{self.channel}.{self.status}"


#: the value types a ``config_schema`` entry may declare
SETTING_TYPES = ("string", "int", "float", "bool", "file")
_SCHEMA_KEYS = {"type", "required", "default", "secret", "help"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingError(ValueError):
    """A plugin setting is missing or malformed.

    :param key: the setting name without the ``NUDGE_`` prefix (``SMTP_CA_FILE``).
    :param problem: what is wrong and, where possible, what to do.
    """

    def __init__(self, key: str, problem: str):
        super().__init__(f"NUDGE_{key}: {problem}")
        self.key = key
        self.problem = problem


def validate_schema(schema: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Check a ``config_schema`` declaration.

    :param schema: ``{KEY: {"type": …, "required": bool, "default": …, "secret": bool, "help": str}}``.
    :return: one line per problem; empty when the schema is valid.
    """
    problems = []
    for key, spec in schema.items():
        if not isinstance(key, str) or not key or key != key.upper() or key.startswith("NUDGE_"):
            problems.append(f"setting name {key!r} must be UPPER_CASE without the NUDGE_ prefix")
            continue
        if not isinstance(spec, Mapping):
            problems.append(f"{key}: the declaration must be a mapping")
            continue
        unknown = set(spec) - _SCHEMA_KEYS
        if unknown:
            problems.append(f"{key}: unknown field {sorted(unknown)[0]!r}; known: {', '.join(sorted(_SCHEMA_KEYS))}")
        kind = spec.get("type", "string")
        if kind not in SETTING_TYPES:
            problems.append(f"{key}: unknown type {kind!r}; use one of {', '.join(SETTING_TYPES)}")
        elif spec.get("default") is not None and kind != "file":
            try:
                _coerce(key, kind, spec["default"])
            except SettingError as exc:
                problems.append(f"{key}: default {spec['default']!r} does not fit the type: {exc.problem}")
    return problems


def _coerce(key: str, kind: str, value: Any) -> Any:
    if kind == "string":
        return str(value)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise SettingError(key, f"must be true or false, got {value!r}")
    if kind in ("int", "float"):
        try:
            return int(value) if kind == "int" else float(value)
        except (TypeError, ValueError):
            raise SettingError(key, f"must be {'an integer' if kind == 'int' else 'a number'}, got {value!r}") from None
    if kind == "file":
        path = os.path.expanduser(str(value))
        if not os.path.isfile(path) or not os.access(path, os.R_OK):
            raise SettingError(key, f"no readable file at {path!r}")
        return path
    raise SettingError(key, f"the plugin declares an unknown type {kind!r}")


def validate_settings(schema: Mapping[str, Mapping[str, Any]], values: Mapping[str, Any]) -> dict[str, Any]:
    """Read the settings a schema declares from *values*, with defaults and types applied.

    :param schema: a channel's ``config_schema``.
    :param values: the instance settings (keys without ``NUDGE_``).
    :return: ``{KEY: value}`` for every declared key (``None`` when unset and optional).
    :raises SettingError: for the first missing required or malformed setting.
    """
    out: dict[str, Any] = {}
    for key, spec in schema.items():
        value = values.get(key)
        if value is None or value == "":
            value = spec.get("default")
        if value is None or value == "":
            if spec.get("required"):
                hint = f" ({spec['help']})" if spec.get("help") else ""
                raise SettingError(key, f"is required but not set{hint}")
            out[key] = None
            continue
        out[key] = _coerce(key, spec.get("type", "string"), value)
    return out


#: levels of arrays and objects in one JSON body (event props may nest 32 levels inside an envelope)
MAX_JSON_DEPTH = 40
_SURROGATE = re.compile("[\ud800-\udfff]")


class JsonInputError(ValueError):
    """A JSON body that cannot be taken.

    :param field: where (``contact.first_name``, ``tags[0]``; ``""`` for the whole body).
    :param malformed: True when it is not JSON at all (HTTP 400), else it is JSON Nudge refuses (422).
    """

    def __init__(self, field: str, message: str, *, malformed: bool = False):
        super().__init__(message)
        self.field, self.message, self.malformed = field, message, malformed


def lone_surrogate(text: str) -> bool:
    """Whether *text* holds a UTF-16 surrogate on its own (``"\\ud800"`` in JSON): not text, and no database
    stores it."""
    return _SURROGATE.search(text) is not None


def parse_json(raw: bytes | str, field: str = "") -> Any:
    """Parse a request body the way every JSON endpoint of Nudge does (plugins' ones included).

    Refused: what is not JSON (``NaN`` and ``Infinity`` included), nesting deeper than
    :data:`MAX_JSON_DEPTH` levels and a lone surrogate in any string or key.

    :param field: the name of *raw* in errors; fields inside it are named from there.
    :raises JsonInputError: naming the field.
    """
    name = field or "the body"
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:  # the C parser's own guard, far beyond MAX_JSON_DEPTH
        raise JsonInputError(field, f"{name} nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise JsonInputError(field, f"{name} is not valid JSON: {exc}", malformed=True) from None
    if isinstance(raw, bytes) and _plainly_fine(raw, value):
        return value
    stack: list[tuple[Any, str, int]] = [(value, field, 0)]
    while stack:  # no recursion: the depth is what is being checked
        item, path, depth = stack.pop()
        name = path or "the body"
        if isinstance(item, str) and lone_surrogate(item):
            raise JsonInputError(
                path,
                f"{name} holds a lone UTF-16 surrogate, which is not text; send valid UTF-8 (or \\u escapes in pairs)",
            )
        if isinstance(item, (dict, list)) and depth >= MAX_JSON_DEPTH:
            raise JsonInputError(path, f"{name} nests deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            for key, sub in item.items():
                if lone_surrogate(key):
                    raise JsonInputError(path, f"a key in {name} holds a lone UTF-16 surrogate, which is not text")
                stack.append((sub, f"{path}.{key}" if path else key, depth + 1))
        elif isinstance(item, list):
            stack.extend((sub, f"{path}[{i}]", depth + 1) for i, sub in enumerate(item))
    return value


#: UTF-8 bytes of a surrogate (ED A0..BF ..), which ``json.loads`` decodes with ``surrogatepass``
_UTF8_SURROGATE = re.compile(rb"\xed[\xa0-\xbf]")


def _plainly_fine(raw: bytes, value: Any) -> bool:
    """Whether *value*, parsed from *raw*, holds no lone surrogate and nests at most :data:`MAX_JSON_DEPTH`
    levels, found quickly; False when unsure, and the full walk decides and names the field.

    No ``\\ud…`` escape and no UTF-8 surrogate bytes in *raw*: no surrogate at all (a C-speed scan of the bytes
    instead of a regex per string). The depth: level by level through the containers only.
    """
    if json.detect_encoding(raw) not in ("utf-8", "utf-8-sig"):
        return False
    if b"\\ud" in raw or b"\\uD" in raw or _UTF8_SURROGATE.search(raw):
        return False
    level = [value] if isinstance(value, (dict, list)) else []
    for _ in range(MAX_JSON_DEPTH):
        if not level:
            return True
        deeper = []
        for item in level:
            for sub in item.values() if isinstance(item, dict) else item:
                if isinstance(sub, (dict, list)):
                    deeper.append(sub)
        level = deeper
    return not level


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def check_header(name: str, value: str) -> str:
    """Refuse a header name or value that could inject another header.

    :return: *value*, unchanged.
    :raises ChannelError: permanent, naming the header, when it holds CR, LF or NUL.
    """
    if any(ch in name for ch in "\r\n\0: ") or not name:
        raise ChannelError(f"invalid header name {name!r}", permanent=True)
    if any(ch in str(value) for ch in "\r\n\0"):
        raise ChannelError(f"header {name} contains a line break; refusing to send (header injection)", permanent=True)
    return value


def address_hash(address: str, salt: str) -> str:
    """The suppression-list form of an address: salted SHA-256 of the trimmed, lower-cased address.

    :param address: an email address, phone number … as the channel uses it.
    :param salt: the instance's ``SECRET_KEY``.
    """
    normalised = address.strip().lower()
    return hashlib.sha256(f"{salt}\0{normalised}".encode()).hexdigest()


_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
#: phone numbers as Nudge stores and providers quote them: E.164, perhaps with spaces, dots or dashes
_PHONE = re.compile(r"\+\d(?:[ .()-]?\d){6,}")


def redact(text: str) -> str:
    """*text* with email addresses and phone numbers masked, for logs and stored diagnostics.

    ``550 5.1.1 <ann@example.com>: no such user`` → ``550 5.1.1 <[email]>: no such user``. Logs name
    messages and contacts by id; provider replies and exception texts go through this first.
    """
    return _PHONE.sub("[phone]", _EMAIL.sub("[email]", text))


class Channel:
    """Base class for channels. Subclasses set ``name`` and implement :meth:`send`.

    :param config: the validated settings of this channel (see ``config_schema``)
        plus the instance settings (``BASE_URL`` …).
    """

    name: ClassVar[str] = ""
    #: settings the channel reads: ``{key: {"type": "string"|"int"|"float"|"bool"|"file", "required": bool,
    #: "default": …, "secret": bool, "help": str}}``; validated at start-up (see :func:`validate_settings`)
    config_schema: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    #: the events this channel's status reports raise, e.g. ``("email.delivered", "email.bounced")``
    events: ClassVar[tuple[str, ...]] = ()
    #: of :attr:`events`, those that are the recipient acting (an open, a click, a reply): they move the
    #: contact's ``last_seen``; Nudge's other events of the channel (deliveries, bounces) do not
    activity_events: ClassVar[tuple[str, ...]] = ()
    #: the parts a template of this channel has (``templates/<channel>/<name>.<part>``); ``html`` is autoescaped,
    #: ``subject`` is one line
    template_parts: ClassVar[tuple[str, ...]] = ("txt",)
    #: the parts a template must have; a tuple inside names alternatives, one of which must be there
    #: (``("subject", ("html", "txt"))``: a subject, and an html or a txt part)
    required_parts: ClassVar[tuple[str | tuple[str, ...], ...]] = ()
    #: templates this channel ships, used when the instance has none of that name: ``{name: {part: source}}``
    builtin_templates: ClassVar[Mapping[str, Mapping[str, str]]] = {}
    #: True when the channel sends to named endpoints instead of contacts: ``templates/<channel>/<name>.toml``
    #: (``url`` and ``secret`` or ``secrets``) defines one, ``send <channel> <name>`` calls it, and the channel reads
    #: it with :func:`endpoint` (needs :attr:`address_field` None)
    endpoints: ClassVar[bool] = False
    #: the contact attribute holding this channel's address ("email", "phone"); None = not addressed to a contact
    address_field: ClassVar[str | None] = None
    #: the consent a send needs: :data:`CONSENT_UNLESS_REVOKED` (no opt-out on the ledger; email),
    #: :data:`CONSENT_GRANTED` (an opt-in on the ledger; SMS) or None (consent does not apply: channels
    #: addressing nobody)
    consent: ClassVar[str | None] = "unless_revoked"
    #: True when its marketing messages count toward (and are held by) ``NUDGE_FREQUENCY_CAP``
    counts_toward_cap: ClassVar[bool] = True
    #: how a recipient opts out: :data:`UNSUBSCRIBE_LINK` (the engine gives every message a one-click
    #: ``unsubscribe_url`` and the channel must show it), :data:`UNSUBSCRIBE_PROVIDER` (at the provider: a STOP
    #: reply, notifications turned off; the plugin records it with :func:`record_consent`) or None (nobody to
    #: unsubscribe)
    unsubscribe: ClassVar[str | None] = "link"
    #: the event an opt-out on this channel raises (``sms.opted_out``); None: Nudge's ``<name>.unsubscribed``.
    #: Arriving from anywhere (a provider, the API), it revokes the contact's consent on the channel
    opt_out_event: ClassVar[str | None] = None
    #: seconds to wait before each retry; None = the engine's exponential back-off with jitter
    retry_schedule: ClassVar[tuple[float, ...] | None] = None
    #: True when the provider de-duplicates by ``message.key`` (so an ambiguous outcome may be retried)
    idempotent: ClassVar[bool] = False
    #: True when the engine may add open and click tracking to its messages: the links of its ``html`` part
    #: become signed click redirects, an open pixel goes before ``</body>``, and with ``TRACK_TEXT_LINKS`` its
    #: text parts' URLs are wrapped too (docs/tracking.md); its opens and clicks raise ``<name>.opened`` and
    #: ``<name>.clicked``, which it lists in :attr:`events`
    tracking: ClassVar[bool] = False
    #: local times ``("21:00", "08:00")`` between which this channel sends nothing, in the recipient's time
    #: zone(s), unless a rule sets its own ``quiet hours``; None = no default window
    quiet_hours: ClassVar[tuple[str, str] | None] = None
    #: how many sends of this channel one worker may have in flight at once, each on its own instance of the
    #: channel (its own connection); a channel may set it from its settings in ``__init__``
    concurrency: int = 1
    #: how many of those may go to one :meth:`destination` at once; 0 for no limit beyond :attr:`concurrency`
    destination_limit: int = 0

    def __init__(self, config: Mapping[str, Any] | None = None):
        self.config = dict(config or {})

    def destination(self, message: OutboundMessage) -> str:
        """Where *message* goes, as :attr:`destination_limit` counts it (e.g. the domain of an email address).

        Default: one destination for every message.
        """
        return ""

    def rate_limit(self, message: OutboundMessage) -> RateLimit | None:
        """The provider's rate limit that *message* counts against (e.g. its sender number's), or None.

        Messages with the same :attr:`RateLimit.key` share one limit across every worker and process; a message
        over it goes back to ``pending`` until its slot comes (no attempt counted), while other keys and other
        channels keep flowing. Default: no limit.
        """
        return None

    @classmethod
    def opt_out_event_name(cls) -> str:
        """The event an opt-out on this channel raises: :attr:`opt_out_event`, else ``<name>.unsubscribed``."""
        return cls.opt_out_event or f"{cls.name}.unsubscribed"

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> None:
        """Cross-field checks after :func:`validate_settings` (e.g. "a DKIM selector needs a key file").

        :param settings: the validated settings of this channel.
        :raises SettingError: naming the setting to fix.
        """

    def diagnose(self, *, in_use: bool) -> list[Check]:
        """Checks of this channel's set-up for ``nudge doctor`` and the start-up log (default: none).

        Called on a channel built with the instance's settings, outside any batch. Check what an
        operator can fix: a missing setting, an unsafe default, an unreachable provider.

        :param in_use: True when an active rule sends on this channel or messages wait to go out on it;
            a problem that stops sends is an ``error`` then, and may be only a ``warn`` otherwise.
        :return: one :class:`Check` per thing checked.
        """
        return []

    def test_connection(self) -> Check:
        """Ask the provider, with this channel's settings, whether it answers (the admin UI's "Test connection").

        Called on a channel built with the instance's settings, outside any batch; sends nothing to anyone.
        Report the provider's own answer (``250 OK``, an HTTP status and its message) in :attr:`Check.detail`.

        :return: ``ok`` when the provider answered as expected, ``error`` with what it said (or why it could not
            be reached) and the setting to fix; default: ``warn``, "not supported" (the channel has no test).
        """
        return Check(
            f"{self.name}: connection", "warn", f"not supported: the {self.name} channel has no connection test"
        )

    @classmethod
    def preview_facts(cls, rendered: Mapping[str, str]) -> list[tuple[str, str]]:
        """What someone writing a template should know about a rendered message (an SMS's segments and encoding).

        The template editor shows these under its preview; the core knows nothing of any channel's limits.

        :param rendered: the rendered parts by the names :attr:`template_parts` declares.
        :return: ``(label, value)`` pairs, e.g. ``[("Encoding", "GSM-7"), ("Segments", "2")]``; default none.
        """
        return []

    def validate_address(self, address: str) -> str:
        """Return the address in canonical form, or raise ``ValueError`` saying why it is invalid."""
        if not address or not address.strip():
            raise ValueError("empty address")
        return address.strip()

    @classmethod
    def address_time_zones(cls, address: str, settings: Mapping[str, Any]) -> tuple[str, ...]:
        """The IANA time zones a recipient at *address* may be in (a phone number's area), for quiet hours.

        Used for contacts without a time zone of their own; several zones mean "one of these".

        :param settings: the instance settings (e.g. a default region for national phone numbers).
        :return: zone names; empty when the address says nothing about where its owner is.
        """
        return ()

    def address_forms(self, address: str) -> tuple[str, ...]:
        """The ways a contact's address may be written down for this canonical *address* (an indexed look-up)."""
        return (address,)

    def same_address(self, stored: str, address: str) -> bool:
        """Whether a contact's *stored* address is the canonical *address* (as :meth:`validate_address` gives it)."""
        try:
            return self.validate_address(stored).lower() == address.lower()
        except ValueError:
            return False

    def status(self, status: str, **details: Any) -> DeliveryStatus:
        """Build a :class:`DeliveryStatus` of this channel, checking that it raises a declared event.

        :param status: the event suffix, e.g. ``bounced`` for ``email.bounced``.
        :param details: the other :class:`DeliveryStatus` fields.
        :raises ValueError: when ``<name>.<status>`` is not in :attr:`events`.
        """
        result = DeliveryStatus(channel=self.name, status=status, **details)
        if result.event not in self.events:
            raise ValueError(
                f"channel {self.name!r} does not declare the event {result.event!r}; "
                f"declared: {', '.join(self.events) or 'none'}"
            )
        return result

    @contextlib.contextmanager
    def batch(self) -> Iterator[Channel]:
        """Context in which several sends may share one connection; yields the channel.

        Connections opened inside are closed on exit; a channel can enter a new batch afterwards.
        """
        yield self

    def send(self, message: OutboundMessage) -> SendResult:  # pragma: no cover - abstract
        """Deliver *message* once.

        :return: the provider's answer, with its id for the message.
        :raises ChannelError: classified as permanent, temporary or ambiguous.
        """
        raise NotImplementedError(f"channel {self.name!r} does not implement send()")


_NAME = re.compile(r"[a-z][a-z0-9_]*")
_HHMM = re.compile(r"([01]?\d|2[0-3]):[0-5]\d")


def declaration_problems(cls: Any) -> list[str]:
    """What is wrong with a channel class's declarations, one line each (empty: nothing).

    Nudge refuses a channel with a problem when it loads the plugin; the conformance kit
    (:mod:`server.plugin_testing`) runs the same checks.
    """
    if not (isinstance(cls, type) and issubclass(cls, Channel)):
        return [f"{cls!r} is not a server.sdk.Channel subclass"]
    name, problems = cls.name, []
    if not _NAME.fullmatch(name or ""):
        problems.append(f"channel name {name!r} must be a lowercase word (letters, digits, _), e.g. push")
    quiet = cls.quiet_hours
    if not (
        quiet is None
        or (
            isinstance(quiet, tuple)
            and len(quiet) == 2
            and all(isinstance(t, str) and _HHMM.fullmatch(t) for t in quiet)
        )
    ):
        problems.append(
            f'channel {name!r} declares quiet_hours = {quiet!r}; use None or two local times, e.g. ("21:00", "08:00")'
        )
    if cls.consent not in (CONSENT_UNLESS_REVOKED, CONSENT_GRANTED, None):
        problems.append(
            f"channel {name!r} declares consent = {cls.consent!r}; use {CONSENT_UNLESS_REVOKED!r}, "
            f"{CONSENT_GRANTED!r} or None"
        )
    if cls.unsubscribe not in (UNSUBSCRIBE_LINK, UNSUBSCRIBE_PROVIDER, None):
        problems.append(
            f"channel {name!r} declares unsubscribe = {cls.unsubscribe!r}; use {UNSUBSCRIBE_LINK!r}, "
            f"{UNSUBSCRIBE_PROVIDER!r} or None"
        )
    parts = tuple(cls.template_parts or ())
    if not parts or not all(isinstance(p, str) and _NAME.fullmatch(p) for p in parts):
        problems.append(
            f"channel {name!r} declares template_parts = {cls.template_parts!r}; use lowercase part "
            'names, e.g. ("title", "txt")'
        )
    for required in cls.required_parts:
        for part in (required,) if isinstance(required, str) else required:
            if part not in parts:
                problems.append(f"channel {name!r} requires the part {part!r}, which is not in its template_parts")
    for template, template_parts in cls.builtin_templates.items():
        extra = sorted(set(template_parts) - set(parts))
        if extra:
            problems.append(
                f"channel {name!r}: built-in template {template!r} has the part {extra[0]!r}, which is "
                "not in its template_parts"
            )
    for event in cls.events:
        if not event.startswith(f"{name}.") or not _NAME.fullmatch(event[len(name) + 1 :]):
            problems.append(f"channel {name!r} declares the event {event!r}; its events are named {name}.<word>")
    for attribute in ("activity_events", "opt_out_event"):
        value = getattr(cls, attribute)
        for event in (value,) if isinstance(value, str) else (value or ()):
            if event not in cls.events:
                problems.append(f"channel {name!r} declares {attribute} {event!r}, which is not in its events")
    if cls.endpoints and cls.address_field is not None:
        problems.append(f"channel {name!r} sends to endpoints, so it addresses no contact: set address_field = None")
    return problems


class Trigger:
    """An event source a plugin adds (an inbound webhook, a form provider …).

    Its pages and endpoints come through ``register_blueprints``; here it declares
    what it raises, so the rules language knows the event names.
    """

    name: ClassVar[str] = ""
    #: the events it raises, e.g. ``("shop.order_paid",)``
    events: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""


@dataclass(frozen=True)
class ConditionFunction:
    """A function rules may call in their conditions, e.g. ``domain(contact.email) == "example.com"``.

    ``register_condition_functions`` returns these; docs/plugins.md walks through one.

    :param name: how rules call it: letters, digits and ``_``, not starting with a digit, and not a
        word the language keeps where a value starts (``true``, ``false``, ``null``, ``tag``, ``now``,
        ``today``, ``not``, ``has``, ``in``, ``did``).
    :param params: the type of each parameter, one of ``string``, ``number``, ``bool``, ``date``,
        ``datetime``, ``list``, ``duration``, ``time``, ``any``; the checker refuses calls with other
        arguments (``nudge check``, ``nudge apply``, the API).
    :param result: the type of the result, in the same words; the checker types what uses the call.
    :param implementation: a pure Python function of plain values, called with one argument per
        parameter, each of its declared type (never None: a missing argument makes the call unknown
        without calling it). Returning None means "no value". Raising, or returning another type than
        ``result``, makes the call unknown, so the condition does not hold, and the contact's journey
        log says why.
    :param sql: the function's SQL form for each database it supports (``sqlite``, ``postgresql``): an
        SQL expression in which ``{0}``, ``{1}`` … stand for the arguments, e.g.
        ``"lower(substr({0}, instr({0}, '@') + 1))"``. Only for ``string``, ``number`` and ``bool``
        parameters and result. It must give what ``implementation`` gives, and NULL for a NULL
        argument. Segments and broadcasts, which the database counts, may only call functions that
        have an SQL form for the instance's database.
    :param description: one line saying what it gives.
    """

    name: str
    params: tuple[str, ...]
    result: str
    implementation: Callable[..., Any]
    sql: Mapping[str, str] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.params, list):  # a list is fine to write; the declaration keeps a tuple
            object.__setattr__(self, "params", tuple(self.params))


class Action:
    """A step for the rules language that is not a send (a CRM push, a Slack post …).

    Subclasses set ``name`` and implement :meth:`run`.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def run(self, contact: Mapping[str, Any], args: Mapping[str, Any]) -> None:  # pragma: no cover - abstract
        """Do the step for *contact* (plain data) with the rule's *args*; raise :class:`ChannelError` to retry."""
        raise NotImplementedError(f"action {self.name!r} does not implement run()")


class _Host(Protocol):
    """What Nudge's side of the plugin API provides (``server.plugin_writes``): the functions below call it."""

    def record_consent(
        self,
        name: str,
        address: str,
        granted: bool,
        *,
        source: str,
        event: str | None = None,
        props: Mapping[str, Any] | None = None,
        receipt: str | None = None,
        wording: str | None = None,
    ) -> Recorded: ...

    def raise_event(
        self, name: str, address: str, event: str, props: Mapping[str, Any] | None = None, *, receipt: str | None = None
    ) -> Recorded: ...

    def suppress(
        self, name: str, address: str, reason: str, detail: str | None = None, *, receipt: str | None = None
    ) -> Recorded: ...

    def ingest_event(
        self,
        contact: Mapping[str, Any],
        name: str,
        props: Mapping[str, Any] | None,
        *,
        source: str,
        occurred_at: datetime | None = None,
        receipt: str | None = None,
    ) -> Ingested: ...

    def record_status(
        self,
        report: DeliveryStatus,
        *,
        outcome: bool = True,
        fails_message: bool = False,
        order: Mapping[str, int] | None = None,
    ) -> Recorded: ...

    def find_contacts(self, name: str, address: str) -> list[dict[str, Any]]: ...

    def find_message(self, name: str, provider_id: str) -> SentMessage | None: ...

    def channel(self, name: str) -> Channel: ...

    def endpoint(self, name: str) -> Endpoint | None: ...

    def disable_endpoint(self, name: str, reason: str) -> None: ...

    def inbound_source(self, name: str) -> InboundSource | None: ...

    def enqueue(self, function: Any, *args: Any) -> None: ...

    def problem(self, status: int, title: str, detail: str, *, field: str | None = None) -> Any: ...

    def unsubscribe(
        self, token: str, *, source: str, ip: str | None = None, user_agent: str | None = None
    ) -> str | None: ...


def _host() -> _Host:
    """Nudge's side of the plugin API, inside the running app (a request, a job, an app context).

    The SDK itself imports nothing of Nudge's: ``create_app()`` puts the writer in ``app.extensions``.
    """
    from flask import current_app, has_app_context

    if not has_app_context():
        raise RuntimeError(
            "server.sdk reads and writes need Nudge's app context: call them from a request "
            "(a plugin's endpoint), a job or a channel's send()"
        )
    host: _Host = current_app.extensions["nudge.sdk"]
    return host


def unsubscribe(token: str, *, source: str, ip: str | None = None, user_agent: str | None = None) -> str | None:
    """Record the opt-out a signed unsubscribe token asks for, exactly as the one-click ``POST /u/<token>`` does.

    Revokes the contact's consent on the token's channel and raises the channel's opt-out event
    (``<channel>.unsubscribed`` unless it declares another), once: a repeated request records nothing new;
    then commits and hands the event to the engine. Call it e.g. from a plugin endpoint that receives
    ``mailto:`` unsubscribes.

    :param token: the last path segment of ``OutboundMessage.unsubscribe_url``.
    :param source: where the request came from, kept in the consent ledger (``mailto``).
    :param ip: the requester's IP address, when known.
    :param user_agent: the requester's user agent, when known.
    :return: the channel unsubscribed from, or None when the token's contact no longer exists.
    :raises ValueError: when the token is forged, tampered with, made for another purpose, or expired.
    """
    return _host().unsubscribe(token, source=source, ip=ip, user_agent=user_agent)


@dataclass(frozen=True)
class Recorded:
    """What a write of :mod:`server.sdk` did.

    :param contacts: how many contacts it concerned (each got its ledger row or event).
    :param duplicate: True when nothing was written because it was written before: the *receipt* was seen
        already, or a status report is not ahead of the one recorded last.
    """

    contacts: int = 0
    duplicate: bool = False


#: the roles of the admin UI, lowest first: viewers read, editors also change things, admins also manage users
ADMIN_ROLES = ("viewer", "editor", "admin")
#: where :func:`admin_page` writes its declaration on a view (read by Nudge's admin access checks)
ADMIN_ROLE_ATTR = "nudge_admin_role"


def admin_page(role: str = "viewer", *, writes: str | None = None) -> Any:
    """Declare a plugin's Flask view an admin page: Nudge signs the person in and checks their role on every request.

    Put it below the route decorator. The page gets the admin pages' Content-Security-Policy; a
    person not signed in is sent to the sign-in page, a role too low gets 403.

    :param role: the least role (one of :data:`ADMIN_ROLES`) that may open the page (GET).
    :param writes: the least role for POST and the other state-changing methods; by default *role*, but
        never below ``editor`` (viewers are read-only).
    :raises ValueError: for a role that is not one of :data:`ADMIN_ROLES`.
    """
    for value in (role, writes):
        if value is not None and value not in ADMIN_ROLES:
            raise ValueError(f"admin role {value!r} is not one of {', '.join(ADMIN_ROLES)}")

    def decorator(view: Any) -> Any:
        setattr(view, ADMIN_ROLE_ATTR, (role, writes))
        return view

    return decorator


@dataclass(frozen=True)
class Ingested:
    """What :func:`ingest_event` stored: the contact (found or created) and the event; both None for a duplicate."""

    contact_id: int | None
    event_id: int | None
    duplicate: bool = False


@dataclass(frozen=True)
class SentMessage:
    """An outbox message a provider reports on, as :func:`find_message` finds it.

    :param key: the outbox key (``OutboundMessage.key``).
    :param template: the template (or, for an endpoint channel, the endpoint) it was sent with.
    :param status: Nudge's status of it (``sent``, ``failed`` …).
    :param address: where it went: the recipient's address on the channel (canonical, when it validates),
        or None for a channel addressing nobody or a contact erased since.
    :param reported: the statuses the channel reported for it so far, oldest first.
    """

    key: str
    template: str
    status: str
    address: str | None
    reported: tuple[str, ...] = ()


@dataclass(frozen=True)
class Endpoint:
    """A named destination of an endpoint channel (``templates/<channel>/<name>.toml``).

    :param disabled_reason: why it no longer takes calls, when :attr:`disabled_at` is set.
    """

    name: str
    url: str
    secrets: tuple[str, ...]
    disabled_at: datetime | None = None
    disabled_reason: str | None = None


@dataclass(frozen=True)
class InboundSource:
    """A source of inbound payloads an operator configured: its name, signing secret and field mapping."""

    id: int
    name: str
    secret: str
    mapping: Mapping[str, Any]


class ContactDataError(ValueError):
    """Contact data a plugin hands to :func:`ingest_event` cannot be taken; ``field`` names the culprit."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def record_consent(
    channel: str,
    address: str,
    granted: bool,
    *,
    source: str,
    event: str | None = None,
    props: Mapping[str, Any] | None = None,
    receipt: str | None = None,
    wording: str | None = None,
) -> Recorded:
    """Record that the owner of *address* gave or withdrew consent on *channel*, as the provider reports it.

    Every contact with the address gets a consent ledger row (unless it already is in that state) and
    *event*. An opt-out also puts the address on the suppression list, so a contact created later with
    it (import, API) is not messaged either; an opt-in lifts that opt-out suppression (never a bounce's).
    One transaction; the events reach the engine after the commit.

    :param channel: the channel name (``sms``); *address* is in its canonical form (``validate_address``).
    :param source: where the change came from, for the ledger (``sms:STOP``).
    :param event: the event raised per contact (``sms.opted_out``), or None.
    :param receipt: the provider's id of what it told us (a message SID): a second call with the same
        receipt changes nothing.
    :param wording: what the person agreed to, in the words they saw (kept in the ledger).
    """
    return _host().record_consent(
        channel, address, granted, source=source, event=event, props=props, receipt=receipt, wording=wording
    )


def raise_event(
    channel: str, address: str, event: str, props: Mapping[str, Any] | None = None, *, receipt: str | None = None
) -> Recorded:
    """Raise *event* for every contact whose *channel* address is *address* (e.g. ``sms.replied``).

    :param receipt: the provider's id of the message: a second call with it changes nothing.
    """
    return _host().raise_event(channel, address, event, props=props, receipt=receipt)


def suppress(
    channel: str, address: str, reason: str, detail: str | None = None, *, receipt: str | None = None
) -> Recorded:
    """Put *address* on the suppression list of *channel* (``bounced``, ``complained``, ``unsubscribed`` …).

    :param detail: a short explanation without personal data (it outlives an erasure).
    """
    return _host().suppress(channel, address, reason, detail=detail, receipt=receipt)


def ingest_event(
    contact: Mapping[str, Any],
    name: str,
    props: Mapping[str, Any] | None = None,
    *,
    source: str,
    occurred_at: datetime | None = None,
    receipt: str | None = None,
) -> Ingested:
    """Raise event *name* for the contact *contact* identifies, creating the contact when nobody has it.

    What Nudge's events API does for a posted event (an inbound webhook, a form provider …): the contact
    is found by ``external_id`` or ``email`` (``phone`` and other fields are set on a new contact), the event
    stored, and the engine handed it after the commit.

    :param contact: ``{"email": …, "external_id": …, "phone": …}``; at least an email or an external id.
    :param source: where it came from, kept with the event (at most 32 characters, e.g. ``hook:shop``).
    :param receipt: the sender's id of the payload: a second call with it (from the same *source*) stores nothing
        and returns ``duplicate=True``.
    :raises ContactDataError: naming the field when the contact data cannot be taken.
    """
    return _host().ingest_event(contact, name, props, source=source, occurred_at=occurred_at, receipt=receipt)


def record_status(
    report: DeliveryStatus, *, outcome: bool = True, fails_message: bool = False, order: Mapping[str, int] | None = None
) -> Recorded:
    """Record what a provider reported about a message (or an address): the message's status history, a
    suppression when ``report.suppress`` is set, and for an outcome the event ``<channel>.<status>``.

    The message is found by ``report.provider_id`` (or ``report.message_key``), the contact through it, else
    by ``report.address``. One transaction; the event reaches the engine after the commit.

    :param outcome: False for a step before the outcome (Twilio's ``sending``): history only, no event, and the
        status need not be a declared event.
    :param fails_message: the report means the message did not arrive: it is marked ``failed`` with
        ``report.detail`` as its error.
    :param order: the provider's statuses in the order they can happen (``{"queued": 1, "sent": 3, …}``):
        callbacks arrive out of order, so a report not ahead of the last one recorded for the message from this
        channel changes nothing (``duplicate=True``); checked under a lock on the message.
    :raises ValueError: when the channel is unknown or an outcome is not one of its declared events.
    """
    return _host().record_status(report, outcome=outcome, fails_message=fails_message, order=order)


def find_contacts(channel: str, address: str) -> list[dict[str, Any]]:
    """The contacts whose *channel* address is *address* (however it was written down), as plain data.

    :return: one dict per contact, oldest first: ``id`` and the fields templates see (``email``, ``phone`` …).
    """
    return _host().find_contacts(channel, address)


def find_message(channel: str, provider_id: str) -> SentMessage | None:
    """The message of *channel* the provider knows as *provider_id* (what ``send`` returned), or None."""
    return _host().find_message(channel, provider_id)


def channel(name: str) -> Channel:
    """The channel *name* as this instance has it configured (its settings in ``config``), e.g. to build a
    :class:`DeliveryStatus` with :meth:`Channel.status` or to read a setting of one's own."""
    return _host().channel(name)


def endpoint(name: str) -> Endpoint | None:
    """The endpoint called *name* (``templates/<channel>/<name>.toml``), read now: a disabled endpoint or a
    rotated secret applies to pending retries at once."""
    return _host().endpoint(name)


def disable_endpoint(name: str, reason: str) -> None:
    """Stop calling endpoint *name* (it answered 410 Gone …): committed at once, shown to operators with *reason*."""
    _host().disable_endpoint(name, reason)


def inbound_source(name: str) -> InboundSource | None:
    """The inbound source called *name* an operator configured, or None."""
    return _host().inbound_source(name)


def enqueue(function: Any, *args: Any) -> None:
    """Run ``function(*args)`` later in a worker, inside the app context (follow-up work of a callback).

    *function* must be importable by name (a module-level function of the plugin) and *args* plain data.
    """
    _host().enqueue(function, *args)


def problem(status: int, title: str, detail: str, *, field: str | None = None) -> Any:
    """An ``application/problem+json`` answer, as Nudge's API gives (for a plugin's endpoint)."""
    return _host().problem(status, title, detail, field=field)
