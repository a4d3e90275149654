"""The send-time policy: whether a message may reach its recipient now. One module, asked by every path.

The outbox asks :func:`blocker` and :func:`resumes_at` right before each send (so an opt-out recorded while a
message waits still stops it, and nothing goes out inside quiet hours); journeys ask :func:`resumes_at` before
they write a send, and the set-based path asks :func:`quiet_window` to know when it may not take over.
Everything channel-specific comes from the channel class's declarations:

- ``address_field``: a channel addressing nobody (an endpoint) has no recipient to protect: nothing blocks it;
- ``consent``: ``unless_revoked`` blocks after an opt-out, ``granted`` also without an opt-in; the instance's
  ``CONSENT_REQUIRED`` makes the channels it names need an opt-in whatever they declare (:func:`consent_rule`,
  asked by everything that decides whether a contact may get a message or counts as subscribed);
- the suppression list (bounces, complaints, invalid addresses, opt-outs, erased contacts) blocks the address,
  whoever the contact is now;
- ``counts_toward_cap``: marketing messages count toward, and are held by, ``NUDGE_FREQUENCY_CAP`` and the
  channel's own ``NUDGE_FREQUENCY_CAPS``, each as far as the rule's priority may use it (:mod:`.caps`);
- ``quiet_hours``: the default window, unless the rule has its own.

A transactional message (one the person asked for: a double opt-in confirmation, a team notification) is
exempt from consent, opt-outs, erasure and the cap, but never goes to an address that bounced, complained
or is invalid.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import func
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from ..config_checks import names_of
from ..consent import current_consent, latest_consent, suppression_reason
from ..models import ConsentStatus, Contact, SuppressionReason
from ..sdk import CONSENT_GRANTED, CONSENT_UNLESS_REVOKED
from .caps import held_by_cap, parse_cap
from .quiet import Window, send_resumes_at, window

#: suppression reasons that stop even a transactional message: the address cannot, or must not, get mail
UNREACHABLE = frozenset(
    {SuppressionReason.BOUNCED.value, SuppressionReason.COMPLAINED.value, SuppressionReason.INVALID.value}
)

#: the consent rule, stated once: per ``Channel.consent`` declaration, the contact's latest ledger status on the
#: channel (None: no row) that lets a send through. :func:`consent_refusal` reads it one contact at a time (the
#: outbox), :func:`consent_clause` as SQL over many (a broadcast's audience)
CONSENT_LETS_THROUGH: dict[str, frozenset[str | None]] = {
    CONSENT_UNLESS_REVOKED: frozenset({None, ConsentStatus.GRANTED.value}),
    CONSENT_GRANTED: frozenset({ConsentStatus.GRANTED.value}),
}
#: what stands for "no ledger row" in SQL (a status is never empty)
_NO_ROW = ""
#: why a send is refused by the consent rule → how a person reads it (the admin contact page)
CONSENT_STATES: dict[str | None, str] = {
    None: "subscribed",
    "no_consent": "needs opt-in",
    "unsubscribed": "unsubscribed",
}

__all__ = [
    "CONSENT_LETS_THROUGH",
    "CONSENT_STATES",
    "UNREACHABLE",
    "Lookups",
    "blocker",
    "consent_clause",
    "consent_refusal",
    "consent_required",
    "consent_required_problem",
    "consent_rule",
    "parse_cap",
    "quiet_window",
    "resumes_at",
]


def consent_required(config: Mapping[str, Any]) -> frozenset[str]:
    """The channel names of ``CONSENT_REQUIRED``: those that need an opt-in for marketing sends."""
    return names_of(config.get("CONSENT_REQUIRED"))


def consent_rule(channel_cls: Any, channel: str, config: Mapping[str, Any] | None) -> str | None:
    """The consent rule a marketing send on *channel* follows on this instance: ``granted`` when
    ``CONSENT_REQUIRED`` names a channel that has a consent rule, else what its class declares.

    :param config: the instance's settings (None: the class's declaration alone).
    :return: ``unless_revoked``, ``granted``, or None (consent does not apply to the channel).
    """
    declared = getattr(channel_cls, "consent", None)
    if declared is not None and config is not None and channel in consent_required(config):
        return CONSENT_GRANTED
    return declared


def consent_required_problem(config: Mapping[str, Any], channels: Mapping[str, Any]) -> str | None:
    """What is wrong with ``CONSENT_REQUIRED`` given the installed *channels* (name → class), or None.

    Only a channel that addresses contacts and has a consent rule can need an opt-in (an endpoint reaches nobody).
    """
    eligible = sorted(
        name for name, cls in channels.items() if cls.address_field is not None and cls.consent is not None
    )
    unknown = sorted(consent_required(config) - set(eligible))
    if not unknown:
        return None
    can = ", ".join(eligible) if eligible else "none is installed"
    return (
        f"names no installed channel that addresses contacts with a consent rule: {', '.join(unknown)}; "
        f"it can name: {can}"
    )


def consent_refusal(rule: str | None, consent: str | None) -> str | None:
    """Why consent *rule* (:func:`consent_rule`) refuses a send to a contact whose latest ledger status is *consent*.

    :return: ``unsubscribed`` (an opt-out), ``no_consent`` (the channel needs an opt-in) or None (it may go, or
        consent does not apply to the channel).
    """
    if rule is None or consent in CONSENT_LETS_THROUGH[rule]:
        return None
    return "unsubscribed" if consent == ConsentStatus.REVOKED.value else "no_consent"


def consent_clause(
    channel_cls: Any, channel: str, config: Mapping[str, Any] | None = None, contact_id: Any = Contact.id
) -> ColumnElement[bool] | None:
    """:func:`consent_refusal` set-wise: a condition true for exactly the contacts it lets through on *channel*.

    :param config: the instance's settings, for :func:`consent_rule` (None: the class's declaration alone).
    :param contact_id: the contacts' id column the ledger is correlated with.
    :return: the clause, or None when consent does not apply to the channel (nothing to filter).
    """
    rule = consent_rule(channel_cls, channel, config)
    if rule is None:
        return None
    latest = func.coalesce(latest_consent(contact_id, channel).scalar_subquery(), _NO_ROW)
    through = CONSENT_LETS_THROUGH[rule]
    return latest.in_(sorted(_NO_ROW if status is None else status for status in through))


#: a batch's answers read ahead: the suppression reason of (channel, address), the consent of (contact, channel)
Lookups = tuple[Callable[[str, str], str | None], Callable[[int, str], str | None]]


def blocker(
    session: Session,
    config: Mapping[str, Any],
    channels: Mapping[str, Any],
    channel: str,
    *,
    contact_id: int | None,
    address: str | None,
    now: int,
    transactional: bool = False,
    marketing: bool = True,
    lookups: Lookups | None = None,
    priority: str = "normal",
) -> str | None:
    """Why a message on *channel* to *address* must not go out now, or None when it may.

    :param channels: the installed channel classes by name (their declarations; the cap counts across them).
    :param contact_id: the contact it is for (None: erased since, or nobody's).
    :param address: where it goes: the contact's address on the channel, or a staff member's.
    :param transactional: asked for by the person (see the module's notes), or an internal notification.
    :param priority: the rule's ``priority`` (how much of each frequency cap the message may use).
    :param lookups: the suppression list's and the consent ledger's answers, read for a whole batch at once;
        default: asked of the database now.
    :return: ``no_address``, ``unsubscribed`` (an opt-out: the ledger or the suppression list), ``no_consent``
        (the channel needs an opt-in: it declares so, or ``CONSENT_REQUIRED`` names it), ``erased`` (the address
        belonged to an erased contact), ``bounced`` (it bounced, complained or is invalid) or ``frequency_cap``.
    """
    cls = channels.get(channel)
    if cls is None or cls.address_field is None:
        return None
    if not address:
        return "no_address"
    if lookups is None:
        reason = suppression_reason(session, config["SECRET_KEY"], channel, address)
    else:
        reason = lookups[0](channel, address)
    if transactional:
        return "bounced" if reason in UNREACHABLE else None
    rule = consent_rule(cls, channel, config)
    if rule is not None and contact_id is not None:
        consent = current_consent(session, contact_id, channel) if lookups is None else lookups[1](contact_id, channel)
        refusal = consent_refusal(rule, consent)
        if refusal is not None:
            return refusal
    if reason is not None:
        return reason if reason in (SuppressionReason.UNSUBSCRIBED.value, SuppressionReason.ERASED.value) else "bounced"
    if (
        marketing
        and contact_id is not None
        and held_by_cap(session, config, channels, channel, contact_id, now, priority)
    ):
        return "frequency_cap"
    return None


def quiet_window(rule_quiet: Mapping[str, Any] | None, channel_cls: Any) -> Window | None:
    """The quiet window of a send: the rule's own, else the channel's declared default, else None."""
    return window(rule_quiet, channel_cls)


def resumes_at(
    now: int,
    rule_quiet: Mapping[str, Any] | None,
    channel_cls: Any,
    contact: Contact | None,
    settings: Mapping[str, Any],
    address: str | None = None,
) -> int | None:
    """When a send to *contact* may happen if not now (None: now is fine), in every zone they may be in.

    :param address: the recipient's address when it is not the contact's own (an internal notification).
    """
    return send_resumes_at(now, rule_quiet, channel_cls, contact, settings, address)
