"""The channel contract: the :class:`Channel` base class, its declarations and their checks."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from ._messages import Check, DeliveryStatus, OutboundMessage, RateLimit, SendResult

#: :attr:`Channel.consent`: a send needs no opt-out on the consent ledger
CONSENT_UNLESS_REVOKED = "unless_revoked"
#: :attr:`Channel.consent`: a send needs an opt-in on the consent ledger
CONSENT_GRANTED = "granted"
#: :attr:`Channel.unsubscribe`: a one-click link in every marketing message
UNSUBSCRIBE_LINK = "link"
#: :attr:`Channel.unsubscribe`: the recipient opts out at the provider (replies STOP, turns notifications off);
#: the plugin records it with :func:`record_consent`
UNSUBSCRIBE_PROVIDER = "provider"


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
    #: whether the provider confirms deliveries (``<name>.delivered``) as a rule. False where it does not (an SMTP
    #: server accepts a message; a delivery report comes only where an operator set one up): the results then say
    #: "not reported" instead of a delivery count of 0. None: True when :attr:`events` has
    #: ``<name>.delivered`` (see :meth:`reports_deliveries`)
    delivery_receipts: ClassVar[bool | None] = None
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
    def reports_deliveries(cls) -> bool:
        """Whether the provider confirms deliveries as a rule: :attr:`delivery_receipts`, else whether
        :attr:`events` has ``<name>.delivered``."""
        if cls.delivery_receipts is None:
            return f"{cls.name}.delivered" in cls.events
        return cls.delivery_receipts

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
    receipts = cls.delivery_receipts
    if not (receipts is None or isinstance(receipts, bool)):
        problems.append(f"channel {name!r} declares delivery_receipts = {receipts!r}; use True, False or None")
    elif receipts and f"{name}.delivered" not in cls.events:
        problems.append(
            f"channel {name!r} declares delivery_receipts = True, but {name}.delivered is not in its events"
        )
    if cls.endpoints and cls.address_field is not None:
        problems.append(f"channel {name!r} sends to endpoints, so it addresses no contact: set address_field = None")
    return problems
