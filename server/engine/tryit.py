"""Try a rule before it runs: a made-up contact and a timeline of events through ``nudge simulate``'s engine.

The made-up contact (fields, tags, time zone, consent per channel) becomes the timeline's first line, a
``set`` at the time of its earliest event; timeline lines are ``nudge simulate``'s (JSON Lines with ``at``,
``contact``, ``event`` or ``set``, ``props``), and a line without ``contact`` is about the made-up one.
The simulation is the real engine on a virtual clock in a throwaway database, with this instance's plugins
and custom fields; nothing of the instance changes.

A try can be kept with the rule as a test case (:class:`~server.models.RuleTest`): it expects the sends it
made when it was kept, and runs again on every save of the rule (:func:`rerun_cases`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import RuleTest, utcnow
from .editing import EDITOR_FILE
from .rules import RuleError
from .simulate import TimelineError, read_timeline, simulate, throwaway_instance

#: the made-up contact's name in the timeline
CONTACT_KEY = "contact"
CONSENT = ("granted", "revoked")
#: settings of the instance the simulation follows (its plugins, time zone, the sender's postal address, the
#: channels that need an opt-in: a try suppresses what the outbox would)
SIMULATED_SETTINGS = ("PLUGINS", "LOAD_ENTRY_POINTS", "DEFAULT_TIMEZONE", "POSTAL_ADDRESS", "CONSENT_REQUIRED")
MAX_TIMELINE_LINES = 200
MAX_CASES = 20
_FIELD = re.compile(r"[a-z][a-z0-9_]{0,63}$")


class TryError(ValueError):
    """The made-up contact or the timeline cannot be used; the message names the part and the line."""


@dataclass
class MadeUp:
    """The made-up contact of a try."""

    fields: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    timezone: str = ""
    consent: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_form(cls, fields: str, tags: str, tz: str, consent: dict[str, str]) -> MadeUp:
        """Read the panel's inputs: ``name = value`` lines (JSON values such as ``42`` or ``true`` keep their type,
        anything else is text), tags separated by ``;`` as on the contact page (or commas), an IANA time
        zone, ``granted``/``revoked`` per channel.

        :raises TryError: naming the input and line.
        """
        values: dict[str, Any] = {}
        for number, line in enumerate(fields.splitlines(), 1):
            if not line.strip():
                continue
            name, eq, raw = line.partition("=")
            name = name.strip()
            if not eq or not _FIELD.match(name):
                raise TryError(
                    f"fields, line {number}: write `name = value`, the name in lowercase letters, digits "
                    "and _ (e.g. `first_name = Ana`)"
                )
            values[name] = _value(raw.strip())
        tz = tz.strip()
        if tz:
            try:
                ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError):
                raise TryError(f"time zone: {tz!r} is not a time zone; use a name such as Europe/Berlin") from None
        for channel, status in consent.items():
            if status and status not in CONSENT:
                raise TryError(f"consent for {channel}: choose granted, revoked or not recorded")
        return cls(
            values,
            [t.strip() for t in re.split(r"[;,]", tags) if t.strip()],
            tz,
            {channel: status for channel, status in consent.items() if status},
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MadeUp:
        return cls(
            dict(data.get("fields") or {}),
            list(data.get("tags") or []),
            data.get("timezone") or "",
            dict(data.get("consent") or {}),
        )

    def as_dict(self) -> dict[str, Any]:
        return {"fields": self.fields, "tags": self.tags, "timezone": self.timezone, "consent": self.consent}

    def field_lines(self) -> str:
        """The fields as the panel shows them (``name = value`` lines)."""
        return "\n".join(
            f"{name} = {value if isinstance(value, str) else json.dumps(value)}" for name, value in self.fields.items()
        )


def _value(raw: str) -> Any:
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return value if isinstance(value, (int, float, bool, str)) or value is None else raw


@dataclass
class TryResult:
    """What a try did: every effect and trace line of the simulation, in time order."""

    effects: list[dict[str, Any]]

    @property
    def sends(self) -> list[dict[str, Any]]:
        """The sends, as a test case keeps them."""
        return [
            {"at": e["at"], "contact": e["contact"], "channel": e.get("channel"), "template": e.get("template")}
            for e in self.effects
            if e["action"] == "send"
        ]


def timeline_lines(contact: MadeUp, timeline: str) -> list[str]:
    """The simulation's timeline: the made-up contact's ``set`` line first, then the typed lines.

    :raises TryError: for a malformed line (named ``timeline:N`` as typed), or no event at all.
    """
    typed = list(timeline.splitlines())
    if sum(1 for line in typed if line.strip()) > MAX_TIMELINE_LINES:
        raise TryError(f"the timeline has more than {MAX_TIMELINE_LINES} lines; keep a try short")
    lines = []
    for raw in typed:
        try:
            data = json.loads(raw) if raw.strip() else None
        except ValueError:
            data = None
        if isinstance(data, dict) and "contact" not in data:  # about the made-up contact
            raw = json.dumps({**data, "contact": CONTACT_KEY})
        lines.append(raw)
    try:
        parsed = read_timeline(lines, "timeline")
    except TimelineError as exc:
        raise TryError(str(exc)) from None
    if not parsed:
        raise TryError(
            'the timeline is empty: add an event, e.g. {"at": "2026-03-02T09:00:00Z", "event": "form.submitted"}'
        )
    values: dict[str, Any] = {**contact.fields}
    if contact.tags:
        values["tags"] = contact.tags
    if contact.timezone:
        values["timezone"] = contact.timezone
    if contact.consent:
        values["consent"] = contact.consent
    start = datetime.fromtimestamp(parsed[0].at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [json.dumps({"at": start, "contact": CONTACT_KEY, "set": values}), *lines]


def sample_timeline(plan: dict[str, Any] | None, start: datetime) -> str:
    """A timeline to start from: the rule's trigger event now, then each event it waits for a day apart."""
    events: list[str] = []
    if plan is not None:
        trigger = plan.get("trigger") or {}
        if trigger.get("kind") == "event":
            events.append(trigger["event"])
        events += [step["event"] for step in plan.get("steps", []) if step.get("op") == "wait_for"]
        if plan.get("goal"):
            events.append(plan["goal"]["event"])
    if not events:
        events = ["contact.updated"]
    at = start.astimezone(UTC).replace(second=0, microsecond=0)
    return (
        "\n".join(
            json.dumps({"at": (at + timedelta(days=i)).strftime("%Y-%m-%dT%H:%M:%SZ"), "event": name})
            for i, name in enumerate(dict.fromkeys(events))
        )
        + "\n"
    )


def try_rule(session: Session, app: Any, text: str, contact: MadeUp, timeline: str) -> TryResult:
    """Run the rule *text* for the made-up contact through the timeline; return what happened.

    :raises TryError: for the contact or timeline; :class:`RuleError` when the rule does not check.
    """
    from ..contacts.fields import definitions

    lines = timeline_lines(contact, timeline)
    config = {key: app.config[key] for key in SIMULATED_SETTINGS if app.config.get(key) is not None}
    try:
        # the app that asks builds the throwaway instance: the engine never imports create_app
        with throwaway_instance(app.extensions["nudge.create_app"], config) as sim:
            effects = simulate(sim, [(EDITOR_FILE, text)], lines, trace=True, fields=definitions(session))
    except TimelineError as exc:
        raise TryError(str(exc)) from None
    return TryResult(effects)


def compare(expected: list[dict[str, Any]], sends: list[dict[str, Any]]) -> list[str]:
    """What differs between the sends a case expects and those it made, one line each; empty when equal."""
    key = lambda s: (s["at"], s["contact"], s["channel"], s["template"])  # noqa: E731
    wanted, made = sorted(map(key, expected)), sorted(map(key, sends))
    report = [
        f"expected {channel} {template} to {who} at {at}, not sent"
        for at, who, channel, template in wanted
        if (at, who, channel, template) not in made
    ]
    report += [
        f"sent {channel} {template} to {who} at {at}, not expected"
        for at, who, channel, template in made
        if (at, who, channel, template) not in wanted
    ]
    return report


def run_case(session: Session, app: Any, text: str, case: RuleTest) -> None:
    """Run one test case against *text*; keep whether it passed and what differed on the case."""
    try:
        result = try_rule(session, app, text, MadeUp.from_dict(case.contact), case.timeline)
    except (TryError, RuleError) as exc:
        case.passed, case.report = False, [f"did not run: {str(exc).splitlines()[0]}"]
    else:
        case.report = compare(case.expected, result.sends)
        case.passed = not case.report
    case.run_at = utcnow()


def cases_of(session: Session, rule_id: int) -> list[RuleTest]:
    return list(session.scalars(select(RuleTest).where(RuleTest.rule_id == rule_id).order_by(RuleTest.name)))


def rerun_cases(session: Session, app: Any, rule_id: int, text: str) -> list[RuleTest]:
    """Run every test case of the rule against its new *text* (on every save); return them, results kept."""
    cases = cases_of(session, rule_id)
    for case in cases:
        run_case(session, app, text, case)
    return cases


__all__ = [
    "CONSENT",
    "CONTACT_KEY",
    "MAX_CASES",
    "MadeUp",
    "TryError",
    "TryResult",
    "cases_of",
    "compare",
    "rerun_cases",
    "run_case",
    "sample_timeline",
    "timeline_lines",
    "try_rule",
]
