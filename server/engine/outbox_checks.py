"""The send-time policy of an outbox batch: suppressions and consents read for the batch at once, each message
asked about just before it is sent (:func:`.policy.blocker`), quiet hours, the providers' rate limits."""

from __future__ import annotations

from typing import Any, NamedTuple, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..consent import address_hash
from ..models import Consent, Contact, Suppression
from ..sdk import RateLimit
from . import pacing, policy
from .lanes import Item
from .outbox_rounds import Claimed, Rounds
from .render import ContactRow
from .staff import internal_address, recipient
from .timeutil import iso

#: a contact of a claimed batch: a row of its columns, or (see ``Handoff._contacts``) the ORM's object
BatchContact = ContactRow | Contact


class Target(NamedTuple):
    """A claimed message, its contact, its channel's instance (None: not installed) and its recipient there."""

    msg: Claimed
    contact: BatchContact | None
    channel: Any
    address: str | None


class BatchVerdicts:
    """The suppression list's and the consent ledger's answers for a claimed batch, read in two queries.

    What :func:`policy.blocker` would ask of the database message by message (the same answers: a consent is the
    latest ledger row of its contact and channel, by time then id).
    """

    def __init__(self, session: Session, secret: str, targets: list[tuple[str, str, int | None]]):
        """:param targets: (channel, address, contact id or None) of each message."""
        self.secret = secret
        self._hashes: dict[tuple[str, str], str] = {
            (channel, address): address_hash(secret, channel, address) for channel, address, _ in targets
        }
        self.reasons: dict[tuple[str, str], str] = {}
        if self._hashes:
            rows = session.execute(
                select(Suppression.channel, Suppression.address_hash, Suppression.reason).where(
                    Suppression.channel.in_({channel for channel, _ in self._hashes}),  # the index's first column
                    Suppression.address_hash.in_(set(self._hashes.values())),
                )
            )
            self.reasons = {(channel, digest): reason for channel, digest, reason in rows}
        self.consents: dict[tuple[int, str], str] = {}
        contact_ids = {contact_id for _, _, contact_id in targets if contact_id is not None}
        if contact_ids:
            ledger = session.execute(
                select(Consent.contact_id, Consent.channel, Consent.status)
                .where(Consent.contact_id.in_(contact_ids))
                .order_by(Consent.recorded_at, Consent.id)
            )
            for contact_id, channel, status in ledger:
                self.consents[(contact_id, channel)] = status  # the latest wins

    def suppression(self, channel: str, address: str) -> str | None:
        digest = self._hashes.get((channel, address)) or address_hash(self.secret, channel, address)
        return self.reasons.get((channel, digest))

    def consent(self, contact_id: int, channel: str) -> str | None:
        return self.consents.get((contact_id, channel))


class Checks(Rounds):
    """The policy's questions for a claimed batch (see :class:`Rounds` for the state they use)."""

    _verdicts: BatchVerdicts | None

    def _targets(self, msgs: list[Claimed], contacts: dict[int, BatchContact]) -> list[Target]:
        """Each of *msgs* with its contact, its channel (None: not installed, the message fails when its turn
        comes) and its recipient (:func:`.staff.recipient`): asked once a message, for the policy and the send."""
        found: dict[str, Any] = {}  # a channel's instance by name, asked for once
        targets: list[Target] = []
        for msg in msgs:
            contact = contacts.get(msg.contact_id) if msg.contact_id else None
            channel = found.get(msg.channel)
            if channel is None:
                try:
                    channel = found[msg.channel] = self._channel(msg.channel)
                except Exception:  # no such channel installed: the message fails below
                    targets.append(Target(msg, contact, None, None))
                    continue
            targets.append(Target(msg, contact, channel, recipient(msg, contact, channel.address_field)))
        return targets

    def _read_verdicts(self, targets: list[Target]) -> BatchVerdicts:
        """What the send-time policy reads for the messages of *targets*, read for them all at once."""
        return BatchVerdicts(
            self.session,
            self.config["SECRET_KEY"],
            [
                (msg.channel, address, contact.id if contact is not None else None)
                for msg, contact, channel, address in targets
                if channel is not None and address
            ],
        )

    def _blocked(self, msg: Claimed, contact: BatchContact | None, channel: Any, address: str | None) -> str | None:
        """Why this message must not go out now, or None: the send-time policy, asked at the moment of sending.

        :param address: its recipient on *channel* (:func:`.staff.recipient`)."""
        info = msg.data or {}
        return policy.blocker(
            self.session,
            self.config,
            self.pm.channels,
            msg.channel,
            contact_id=contact.id if contact is not None else None,
            address=address,
            now=self.now,
            transactional=bool(info.get("transactional")),
            marketing=bool(info.get("marketing", True)),
            priority=str(info.get("priority") or "normal"),
            lookups=None if self._verdicts is None else (self._verdicts.suppression, self._verdicts.consent),
        )

    def _defer_if_quiet(self, msg: Claimed, contact: BatchContact | None, channel: Any) -> bool:
        """The last guard of quiet hours: a message due inside the recipient's window goes back to ``pending``
        until it ends, without counting an attempt or calling the provider. True when deferred."""
        quiet = (msg.data or {}).get("quiet_hours")
        # it reads the contact's time zone and address on the channel: a row has them
        resume = policy.resumes_at(self.now, quiet, channel, cast(Any, contact), self.config, internal_address(msg))
        if resume is None:
            return False
        self._put_back(msg, resume, f"quiet hours until {iso(resume)}")
        return True

    def _pace(self, ready: dict[str, list[Item]]) -> None:
        """Keep to the providers' rate limits (``Channel.rate_limit``): a message over its limit leaves *ready* and
        goes back to ``pending`` until its slot, no attempt counted; other keys and channels are not held up."""
        for name, items in ready.items():
            channel = self._channel(name)
            groups: dict[RateLimit, list[Item]] = {}
            for item in items:
                limit = channel.rate_limit(item.outbound)
                if limit is not None:
                    groups.setdefault(limit, []).append(item)
            waiting: set[int] = set()
            for limit, group in groups.items():
                taken = pacing.pacer_for(self.app).take(name, limit, len(group), self.now)
                # a hint, not a reservation: the bucket decides again when the row comes back
                first = max(taken.next_slot, self._slots.get((name, limit.key), 0.0))
                detail = f"the provider's rate limit ({limit.per_second:g}/s): waits its turn"
                for k, item in enumerate(group[taken.allowed :]):
                    slot = first + k / limit.per_second
                    self._put_back(item.msg, slot, detail)
                    waiting.add(id(item))
                    self._slots[(name, limit.key)] = slot + 1 / limit.per_second
            if waiting:
                items[:] = [item for item in items if id(item) not in waiting]
