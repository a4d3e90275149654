"""The conformance suite for channel plugins: subclass it in your own pytest tests.

It checks what the engine relies on: a valid config schema, the idempotency key
reaching the provider (same key → same id), errors classified as
:class:`~server.sdk.ChannelError` (temporary or permanent, never a bare
``OSError``), and connections that survive batch reuse::

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
temporarily or for good).
"""
from __future__ import annotations

import re
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Mapping, Protocol

import pytest

from .sdk import Channel, ChannelError, OutboundMessage, SendResult, validate_schema, validate_settings

__all__ = ["ChannelConformance", "Peer"]


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

    # -- helpers a subclass may override ---------------------------------------------------
    def make_channel(self, settings: Mapping[str, Any]) -> Channel:
        """The channel as Nudge builds it: instance settings plus its validated own settings."""
        cls = self.channel_class
        own = validate_settings(cls.config_schema, settings)
        cls.check_settings(own)
        return cls({**settings, **own})

    def message(self, peer: Peer, key: str) -> OutboundMessage:
        return OutboundMessage(key=key, channel=self.channel_class.name, template="conformance", to=peer.address,
                               subject="Conformance", text="Hello from the conformance suite",
                               html="<p>Hello from the conformance suite</p>",
                               unsubscribe_url="https://nudge.example/u/conformance")

    def _send(self, channel: Channel, peer: Peer, key: str) -> SendResult:
        result = channel.send(self.message(peer, key))
        assert isinstance(result, SendResult), f"send() must return a SendResult, not {result!r}"
        return result

    # -- the checks ----------------------------------------------------------------------------
    def test_declares_a_name_events_and_a_valid_config_schema(self) -> None:
        cls = self.channel_class
        assert re.fullmatch(r"[a-z][a-z0-9_]*", cls.name or ""), f"channel name {cls.name!r} must be a lowercase word"
        assert validate_schema(cls.config_schema) == []
        for event in cls.events:
            assert event.startswith(cls.name + "."), f"event {event!r} must start with {cls.name + '.'!r}"

    def test_accepts_the_settings_of_its_peer(self, peer: Peer) -> None:
        channel = self.make_channel(peer.settings)
        assert channel.validate_address(peer.address)

    def test_same_key_reaches_the_provider_with_the_same_id(self, peer: Peer) -> None:
        channel = self.make_channel(peer.settings)
        first = self._send(channel, peer, "conformance:1")
        again = self._send(channel, peer, "conformance:1")  # a retry of the same outbox row
        other = self._send(channel, peer, "conformance:2")
        seen = peer.seen_ids()
        assert len(seen) >= 2 and seen[0] == seen[1], f"a retry must reuse the provider id; saw {seen}"
        assert seen[-1] != seen[0], f"another key must get another id; saw {seen}"
        if first.provider_id is not None:
            assert again.provider_id == first.provider_id != other.provider_id

    def test_temporary_failure_is_a_retryable_channel_error(self, peer: Peer) -> None:
        channel = self.make_channel(peer.settings)
        with peer.failing(permanent=False), pytest.raises(ChannelError) as caught:
            self._send(channel, peer, "conformance:temporary")
        assert not caught.value.permanent, f"a temporary failure was classified permanent: {caught.value.message}"
        self._send(channel, peer, "conformance:temporary")  # the retry goes through
        assert len(peer.seen_ids()) >= 1

    def test_permanent_failure_is_a_permanent_channel_error(self, peer: Peer) -> None:
        channel = self.make_channel(peer.settings)
        with peer.failing(permanent=True), pytest.raises(ChannelError) as caught:
            self._send(channel, peer, "conformance:permanent")
        assert caught.value.permanent, f"a permanent failure was classified temporary: {caught.value.message}"

    def test_unreachable_provider_is_a_retryable_channel_error(self, peer: Peer) -> None:
        channel = self.make_channel(peer.unreachable_settings)
        with pytest.raises(ChannelError) as caught:
            self._send(channel, peer, "conformance:unreachable")
        assert not caught.value.permanent

    def test_survives_batch_reuse(self, peer: Peer) -> None:
        channel = self.make_channel(peer.settings)
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
