"""Teams: who a rule's ``notify`` and ``task`` steps reach (``NUDGE_TEAMS`` or a ``[teams]`` table).

A member is an email address (mailed through the channel that addresses contacts by ``email``) or
``CHANNEL:TARGET`` for any other channel, e.g. ``webhook:ops-hook`` for the webhook endpoint
``ops-hook``. Three ways to write it::

    NUDGE_TEAMS="sales=ana@x.example,bob@x.example;ops=webhook:ops-hook"
    NUDGE_TEAMS='{"sales": ["ana@x.example", "bob@x.example"], "ops": "webhook:ops-hook"}'

    # nudge.toml
    [teams]
    sales = ["ana@x.example", "bob@x.example"]
    ops = "webhook:ops-hook"
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# matched whole (fullmatch): `$` would also match before a trailing newline
_CHANNEL = re.compile(r"[a-z][a-z0-9_-]*")
_EMAIL = re.compile(r"[^@\s<>,;:\"]+@[^@\s<>,;:\"]+\.[^@\s<>,;:\"]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
EXAMPLE = "e.g. sales=ana@x.example,bob@x.example;ops=webhook:ops-hook"


@dataclass(frozen=True)
class Member:
    """One recipient: an email address (``channel`` None) or a target of a named channel."""

    address: str
    channel: str | None = None

    def __str__(self) -> str:
        return f"{self.channel}:{self.address}" if self.channel else self.address


Teams = dict[str, tuple[Member, ...]]


def parse_teams(value: Any) -> Teams:
    """Read the teams setting: ``team=member,member;team=…``, JSON, or a mapping (a TOML table).

    :raises ValueError: one line saying which team or member is wrong and why.
    """
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"is not valid JSON: {exc.msg} at character {exc.pos}") from None
        else:
            value = _split(text)
    if not isinstance(value, Mapping):
        raise ValueError(f"must map team names to members, {EXAMPLE}")
    teams: Teams = {}
    for name, members in value.items():
        team = str(name).strip()
        if not team or len(team) > 128 or _CONTROL.search(team):
            raise ValueError(f"team name {name!r} must be 1 to 128 printable characters")
        if isinstance(members, str):
            members = [m for m in members.split(",") if m.strip()]
        if not isinstance(members, (list, tuple)) or not members:
            raise ValueError(f"team {team!r} has no members; list email addresses or CHANNEL:TARGET, {EXAMPLE}")
        parsed = [_member(team, str(m)) for m in members]
        teams[team] = tuple(dict.fromkeys(parsed))
    return teams


def _split(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, sep, members = part.partition("=")
        if not sep:
            raise ValueError(f"{part!r} has no '=': write TEAM=MEMBER,MEMBER, {EXAMPLE}")
        out[name.strip()] = [m for m in members.split(",") if m.strip()]
    return out


def _member(team: str, text: str) -> Member:
    member = text.strip()
    if "@" not in member.partition(":")[0] and ":" in member:
        channel, _, target = member.partition(":")
        if not _CHANNEL.fullmatch(channel) or not target.strip() or _CONTROL.search(target):
            raise ValueError(f"team {team!r}: member {member!r} must be CHANNEL:TARGET such as webhook:ops-hook")
        return Member(target.strip(), channel)
    if not _EMAIL.fullmatch(member):
        raise ValueError(
            f"team {team!r}: member {member!r} is neither an email address nor CHANNEL:TARGET "
            "(such as webhook:ops-hook)"
        )
    return Member(member)


def check_channels(teams: Teams, channels: Mapping[str, Any]) -> str | None:
    """A problem with the channels the members name (not installed, no email channel), or None."""
    for team, members in teams.items():
        for member in members:
            if member.channel is None and email_channel(channels) is None:
                return f"team {team!r}: {member} is an email address, but no installed channel mails contacts"
            if member.channel is not None and member.channel not in channels:
                return (
                    f"team {team!r}: {member} names the channel {member.channel!r}, which is not installed "
                    f"(installed: {', '.join(sorted(channels))})"
                )
    return None


def email_channel(channels: Mapping[str, Any]) -> str | None:
    """The channel that addresses contacts by ``email`` (it mails a member given as an address)."""
    return next(
        (name for name, cls in sorted(channels.items()) if getattr(cls, "address_field", None) == "email"), None
    )
