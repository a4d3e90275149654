"""Internal notifications: a rule's ``notify`` and ``task`` steps reach the members of a team.

Each member gets one outbox row, keyed ``team:<enrolment>:<step>:<member>`` and written in the
transaction that moves the journey past the step, so a redelivered job never notifies twice. The
rows are transactional internal mail: addressed to the member (``data.internal.to``), not to the
contact, and not subject to the contact's consent, suppression or frequency cap. A member whose
channel addresses nobody (an endpoint) gets the notification as data, like a ``send`` to the endpoint.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..models import Contact, Enrolment, Message
from ..sdk import OutboundMessage
from ..teams import email_channel
from .context import EngineContext
from .keys import TEAM, message_key
from .render import ContactRow
from .timeutil import to_dt

if TYPE_CHECKING:
    from .outbox_rounds import Claimed

log = logging.getLogger(__name__)

#: the ``Message.data`` key of an internal notification
INTERNAL = "internal"


def notify_team(ctx: EngineContext, enr: Enrolment, step: Any, kind: str, team: str, text: str, **details: Any) -> int:
    """Write one outbox row per member of *team*; return how many (0 when the team is not configured).

    :param kind: ``notify`` or ``task``; *details* (the task's id and due time) travel with the text.
    """
    members = (ctx.config.get("TEAMS") or {}).get(team)
    if not members:
        if ctx.deliver_now is not None:
            return 0  # a simulation: its trace shows the step; teams are an instance's business
        log.warning(
            "rule %s: team %r is not configured in NUDGE_TEAMS; nobody was notified (enrolment %s)",
            enr.rule_id,
            team,
            enr.id,
        )
        return 0
    channels = ctx.plugins.channels if ctx.plugins is not None else {}
    plan = ctx.plan(enr.version_id)
    written = []
    for number, member in enumerate(members):
        channel = member.channel or email_channel(channels)
        cls = channels.get(channel) if channel else None
        if cls is None:
            log.warning("team %r: no installed channel delivers to member %d; skipped", team, number)
            continue
        internal = {"kind": kind, "team": team, "to": member.address, "text": text, **details}
        data = {
            "type": f"nudge.{kind}",
            "enrolment": enr.id,
            "rule": enr.rule_id,
            "rule_name": plan.get("name"),
            "step": step,
            "marketing": False,
            "transactional": True,
            INTERNAL: internal,
        }
        # a channel that addresses nobody takes its target as the template (the endpoint's name)
        template = f"internal.{kind}" if getattr(cls, "address_field", None) else member.address
        msg = Message(
            key=message_key(TEAM, enr.id, step, number),
            contact_id=enr.contact_id,
            channel=channel,
            template=template,
            status="pending",
            next_attempt_at=to_dt(ctx.now),
            created_at=to_dt(ctx.now),
            data=data,
        )
        ctx.session.add(msg)
        written.append(msg)
    ctx.session.flush()
    if ctx.deliver_now is None:  # a simulation shows the step in its trace and mails nobody
        ctx.new_messages.extend(msg.id for msg in written)
    return len(written)


def internal_address(msg: Message | Claimed) -> str | None:
    """The staff member an internal notification goes to, or None for a message to the contact."""
    info = (msg.data or {}).get(INTERNAL)
    return info.get("to") if isinstance(info, dict) else None


def recipient(msg: Message | Claimed, contact: Contact | ContactRow | None, field: str | None) -> str | None:
    """Where *msg* goes on a channel addressing people by *field*: a staff member, or the contact."""
    if field is None:
        return None
    return internal_address(msg) or (getattr(contact, field, None) if contact is not None else None)


def internal_outbound(msg: Message | Claimed, contact: Contact | ContactRow | None) -> OutboundMessage:
    """The plain-text notification a staff member reads: the rule's text, then what it is about."""
    info = msg.data[INTERNAL]
    text = str(info.get("text") or "")
    headline = " ".join(text.split())[:150] or "(no text)"
    what = f"New task for {info['team']}" if info.get("kind") == "task" else f"For {info['team']}"
    lines = [text, "", f"Rule: {msg.data.get('rule_name') or msg.data.get('rule')}"]
    if contact is not None:
        lines.append(f"Contact: #{contact.id} (nudge explain {contact.id})")
    if info.get("task") is not None:
        due = f", due {info['due']}" if info.get("due") else ""
        lines.append(f"Task #{info['task']}{due}; close it with: nudge tasks --done {info['task']}")
    return OutboundMessage(
        key=msg.key,
        channel=msg.channel,
        template=msg.template,
        to=str(info["to"]),
        subject=f"[Nudge] {what}: {headline}",
        text="\n".join(lines) + "\n",
        marketing=False,
        data=msg.data or {},
    )
