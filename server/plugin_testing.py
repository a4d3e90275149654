"""The conformance suite for channel plugins: subclass it in your own pytest tests.

It checks what Nudge relies on. **Declarations**: a valid name, events, consent rule, unsubscribe mechanism,
quiet hours and template parts (:func:`server.sdk.declaration_problems`), a valid config schema. **Templates**:
the channel's built-in templates and a template of every declared part pass Nudge's template checks.
**Sending**: the idempotency key reaching the provider (same key → same id), errors classified as
:class:`~server.sdk.ChannelError` (temporary or permanent, never a bare ``OSError``), connections that
survive batch reuse. **Delivery**: a message goes through Nudge's own outbox to the provider exactly once,
held by the channel's declared consent rule and quiet hours::

    from server.plugin_testing import ChannelConformance

    class TestMyChannel(ChannelConformance):
        channel_class = MyChannel

        @pytest.fixture
        def peer(self):
            with MyFakeProvider() as provider:   # a real local server speaking your provider's API
                yield provider

The ``peer`` fixture returns an object with (see :class:`Peer`): ``settings`` (the
channel's settings pointing at the peer), ``unreachable_settings`` (pointing at a
port nobody listens on), ``address`` (a valid recipient), ``seen_ids()`` (the
idempotency id or message id the provider recorded, one per accepted send) and
``failing(permanent)`` (a context manager in which the provider refuses every send,
temporarily or for good). A channel that sends to endpoints (``endpoints = True``) gets
``endpoint`` and ``unreachable_endpoint`` from its peer too (``{"url": …, "secrets": […]}``).

Each check runs the channel inside a throwaway Nudge (an in-memory database, this channel's plugin
only), as the worker does, so what the channel reads through :mod:`server.sdk` is there.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

import pytest

from .hookspecs import hookimpl
from .sdk import (
    CONSENT_GRANTED,
    Channel,
    ChannelError,
    OutboundMessage,
    SendResult,
    declaration_problems,
    validate_schema,
    validate_settings,
)

__all__ = ["ChannelConformance", "Peer"]

#: a moment the kit's sends happen at, on the engine's clock (a Wednesday noon, UTC)
NOON = int(datetime(2030, 5, 1, 12, 0, tzinfo=UTC).timestamp())


class Peer(Protocol):
    """What a channel's test peer offers the suite."""

    settings: Mapping[str, Any]
    unreachable_settings: Mapping[str, Any]
    address: str

    def seen_ids(self) -> list[str]:
        """The id the provider saw for each accepted send (idempotency key or message id), in order."""

    def failing(self, permanent: bool) -> AbstractContextManager[Any]:
        """Inside, the provider refuses every send: with a temporary error, or a permanent one."""


class ChannelConformance:
    """Base class of a channel's conformance tests; set :attr:`channel_class` and provide a ``peer`` fixture."""

    channel_class: ClassVar[type[Channel]]
    #: False for a provider that takes no id of Nudge's (an SMS API): each send of one key is a new message
    #: there, and the channel must then not declare itself ``idempotent``
    provider_sees_key: ClassVar[bool] = True

    @pytest.fixture(autouse=True)
    def _nudge(self) -> Iterator[None]:
        """The throwaway Nudge instances this test made, closed after it."""
        self._instances: list[tuple[Any, Any, Any]] = []
        yield
        self.close_instances()

    def close_instances(self) -> None:
        """Close the throwaway instances (the ``_nudge`` fixture does, after each check)."""
        for app, context, home in reversed(getattr(self, "_instances", [])):
            context.pop()
            app.extensions["nudge.queue"].close()
            app.extensions["nudge.db"].dispose()
            home.cleanup()
        self._instances = []

    # -- helpers a subclass may override ---------------------------------------------------
    def instance(self, settings: Mapping[str, Any], endpoint: Mapping[str, Any] | None = None) -> Any:
        """A throwaway Nudge with this channel's plugin only, its settings, and (for an endpoint channel) the
        endpoint ``conformance``; its app context stays pushed until the test ends."""
        from .app import create_app
        from .db import get_session
        from .models import WebhookEndpoint

        cls = self.channel_class

        class Plugin:
            name = f"conformance-{cls.name}"

            @hookimpl
            def register_channels(self, config: Any) -> list[type[Channel]]:
                return [cls]

        home = tempfile.TemporaryDirectory(prefix="nudge-conformance-")
        try:
            app = create_app(
                {
                    "HOME": home.name,
                    # a file, not memory: the outbox's lanes are threads, each with its own connection
                    "DATABASE_URL": f"sqlite:///{home.name}/nudge.db",
                    "SECRET_KEY": "conformance-secret-00",
                    "LOAD_ENTRY_POINTS": False,
                    "PLUGINS": (Plugin(),),
                    "DEFAULT_TIMEZONE": "UTC",
                    **settings,
                }
            )
        except BaseException:
            home.cleanup()
            raise
        context = app.app_context()
        context.push()
        self._instances = [*getattr(self, "_instances", []), (app, context, home)]
        if cls.endpoints and endpoint is not None:
            session = get_session()
            session.add(WebhookEndpoint(name="conformance", url=endpoint["url"], secrets=list(endpoint["secrets"])))
            session.commit()
        return app

    def make_channel(self, settings: Mapping[str, Any], endpoint: Mapping[str, Any] | None = None) -> Channel:
        """The channel as Nudge builds it: instance settings plus its validated own settings."""
        cls = self.channel_class
        own = validate_settings(cls.config_schema, settings)
        cls.check_settings(own)
        app = self.instance(settings, endpoint)
        return app.extensions["nudge.plugins"].channel(cls.name, app.config)

    def message(self, peer: Peer, key: str) -> OutboundMessage:
        parts = {part: f"Conformance {part}" for part in self.channel_class.template_parts}
        return OutboundMessage(
            key=key,
            channel=self.channel_class.name,
            template="conformance",
            to=peer.address,
            subject="Conformance",
            text="Hello from the conformance suite",
            html="<p>Hello from the conformance suite</p>",
            parts=parts,
            unsubscribe_url="https://nudge.example/u/conformance",
        )

    def _send(self, channel: Channel, peer: Peer, key: str) -> SendResult:
        result = channel.send(self.message(peer, key))
        assert isinstance(result, SendResult), f"send() must return a SendResult, not {result!r}"
        return result

    def _channel(self, peer: Peer, unreachable: bool = False) -> Channel:
        if unreachable:
            return self.make_channel(peer.unreachable_settings, getattr(peer, "unreachable_endpoint", None))
        return self.make_channel(peer.settings, getattr(peer, "endpoint", None))

    # -- the checks ----------------------------------------------------------------------------
    def test_declares_valid_behaviour_and_a_valid_config_schema(self) -> None:
        cls = self.channel_class
        assert declaration_problems(cls) == []
        assert validate_schema(cls.config_schema) == []
        if not self.provider_sees_key:
            assert not cls.idempotent, "a provider that takes no id of ours cannot de-duplicate a retry"

    def test_its_templates_pass_nudges_checks(self, peer: Peer) -> None:
        from .engine.render import Renderer

        cls = self.channel_class
        renderer = Renderer(channels={cls.name: cls})
        for name, parts in cls.builtin_templates.items():  # their data may hold more names (a form's confirm_url)
            problems = [p for p in renderer.validate(cls.name, dict(parts)) if "unknown name" not in p.message]
            assert problems == [], f"built-in template {name!r}: {problems}"
        every_part = dict.fromkeys(cls.template_parts, "Hello {{ contact.first_name or 'there' }}")
        assert renderer.validate(cls.name, every_part) == []
        assert [p.part for p in renderer.validate(cls.name, {"nonsense": "x", **every_part})] == ["nonsense"]

    def test_accepts_the_settings_of_its_peer(self, peer: Peer) -> None:
        channel = self._channel(peer)
        assert channel.validate_address(peer.address)

    def test_same_key_reaches_the_provider_with_the_same_id(self, peer: Peer) -> None:
        channel = self._channel(peer)
        first = self._send(channel, peer, "conformance:1")
        again = self._send(channel, peer, "conformance:1")  # a retry of the same outbox row
        other = self._send(channel, peer, "conformance:2")
        seen = peer.seen_ids()
        if not self.provider_sees_key:  # each send is a message of its own there: the provider ids say so
            assert len(seen) == 3 and len({first.provider_id, again.provider_id, other.provider_id}) == 3
            return
        assert len(seen) >= 2 and seen[0] == seen[1], f"a retry must reuse the provider id; saw {seen}"
        assert seen[-1] != seen[0], f"another key must get another id; saw {seen}"
        if first.provider_id is not None:
            assert again.provider_id == first.provider_id != other.provider_id

    def test_temporary_failure_is_a_retryable_channel_error(self, peer: Peer) -> None:
        channel = self._channel(peer)
        with peer.failing(permanent=False), pytest.raises(ChannelError) as caught:
            self._send(channel, peer, "conformance:temporary")
        assert not caught.value.permanent, f"a temporary failure was classified permanent: {caught.value.message}"
        self._send(channel, peer, "conformance:temporary")  # the retry goes through
        assert len(peer.seen_ids()) >= 1

    def test_permanent_failure_is_a_permanent_channel_error(self, peer: Peer) -> None:
        channel = self._channel(peer)
        with peer.failing(permanent=True), pytest.raises(ChannelError) as caught:
            self._send(channel, peer, "conformance:permanent")
        assert caught.value.permanent, f"a permanent failure was classified temporary: {caught.value.message}"

    def test_unreachable_provider_is_a_retryable_channel_error(self, peer: Peer) -> None:
        channel = self._channel(peer, unreachable=True)
        with pytest.raises(ChannelError) as caught:
            self._send(channel, peer, "conformance:unreachable")
        assert not caught.value.permanent

    def test_survives_batch_reuse(self, peer: Peer) -> None:
        channel = self._channel(peer)
        with channel.batch() as batch:
            for i in range(3):
                self._send(batch, peer, f"conformance:batch1:{i}")
            with peer.failing(permanent=False), pytest.raises(ChannelError):
                self._send(batch, peer, "conformance:batch1:failed")
            self._send(batch, peer, "conformance:batch1:after-error")  # an error leaves the batch usable
        with channel.batch() as batch:  # a second batch after the first one closed its connection
            for i in range(2):
                self._send(batch, peer, f"conformance:batch2:{i}")
        self._send(channel, peer, "conformance:no-batch")
        assert len(peer.seen_ids()) == 7

    def test_sends_over_several_instances_at_once(self, peer: Peer) -> None:
        """The outbox sends over ``concurrency`` instances (lanes), each in its own batch and thread."""
        import threading

        channel = self._channel(peer)
        assert isinstance(channel.concurrency, int) and channel.concurrency >= 1, "concurrency must be an int >= 1"
        assert isinstance(channel.destination_limit, int) and channel.destination_limit >= 0
        assert isinstance(channel.destination(self.message(peer, "conformance:lanes:probe")), str)
        lanes = [channel, self._channel(peer)]
        app = self._instances[-1][0]
        errors: list[BaseException] = []

        def lane(index: int, instance: Channel) -> None:
            try:  # as the outbox runs a lane: in a thread of its own, in the app's context
                with app.app_context(), instance.batch() as batch:
                    for i in range(3):
                        self._send(batch, peer, f"conformance:lanes:{index}:{i}")
            except BaseException as exc:  # shown by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=lane, args=(i, instance)) for i, instance in enumerate(lanes)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        assert len(peer.seen_ids()) == 6

    def test_delivered_through_the_outbox_once_as_its_declarations_say(self, peer: Peer) -> None:
        """Nudge's outbox, not a direct call: consent (as the channel declares it), quiet hours (its default
        window), then one delivery however often the delivery job runs."""
        from .db import get_session
        from .engine.outbox import deliver
        from .engine.timeutil import to_dt
        from .models import Consent, Contact, Message, Template

        cls = self.channel_class
        app = self.instance(peer.settings, getattr(peer, "endpoint", None))
        session = get_session()
        contact = Contact(fields={}, timezone="UTC", external_id="conformance-contact")
        if cls.address_field:
            setattr(contact, cls.address_field, peer.address)
        session.add(contact)
        session.flush()
        if not cls.endpoints:
            session.add(
                Template(
                    channel=cls.name,
                    name="conformance",
                    parts=dict.fromkeys(cls.template_parts, "Hello {{ contact.first_name or 'there' }}"),
                )
            )
        message = Message(
            key="conformance:outbox",
            contact_id=contact.id,
            channel=cls.name,
            template="conformance",
            status="pending",
            next_attempt_at=to_dt(NOON),
            data={"marketing": True},
        )
        session.add(message)
        session.commit()
        before = len(peer.seen_ids())
        if cls.address_field and cls.consent == CONSENT_GRANTED:
            assert deliver(session, app, [message.id], now=NOON) == 0  # no opt-in on the ledger: never sent
            session.refresh(message)
            assert (message.status, message.error) == ("suppressed", "no_consent")
            assert len(peer.seen_ids()) == before
            message.status, message.error, message.attempts = "pending", None, 0
            session.add(Consent(contact_id=contact.id, channel=cls.name, status="granted", source="conformance"))
            session.commit()
        if cls.quiet_hours and cls.address_field:
            start = _hhmm(cls.quiet_hours[0])
            inside = NOON - NOON % 86400 + start + 60  # a minute into the window, UTC
            assert deliver(session, app, [message.id], now=inside) == 0
            session.refresh(message)
            waits_until = message.next_attempt_at
            assert message.status == "pending" and waits_until is not None and waits_until > to_dt(inside), (
                "a send inside the channel's quiet hours must wait for them to end"
            )
            assert len(peer.seen_ids()) == before
            message.next_attempt_at = to_dt(NOON)
            session.commit()
        for _ in range(2):  # a duplicate delivery job finds it done
            deliver(session, app, [message.id], now=NOON + 86400)
        session.refresh(message)
        assert message.status == "sent", f"the outbox did not send it: {message.status} {message.error}"
        assert len(peer.seen_ids()) == before + 1


def _hhmm(text: str) -> int:
    hours, minutes = (int(x) for x in text.split(":"))
    return hours * 3600 + minutes * 60
