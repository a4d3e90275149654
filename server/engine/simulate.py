"""``nudge simulate``: the real engine against a virtual clock, an in-memory database and captured channels."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from dsl import BUILTIN_CONTACT_FIELDS

from ..consent import record_consent
from ..models import Contact, ContactTag, Event, FieldDefinition, JourneyLog, Message, MessageStatus, Rule
from . import attribution, dispatch, runtime
from .blank_schema import create_schema
from .context import EngineContext
from .outbox import Delivery
from .rules import RuleError, apply_plans, compile_rules
from .timeutil import iso, parse_date_value, to_dt, to_ts

#: what a simulation prints by default; ``--trace`` adds the engine's reasoning (branch, wait, …)
EFFECTS = {"send", "suppressed", "tag", "untag", "set", "score", "note", "task", "notify", "enter", "exit"}
CONTACT_ATTRS = {"email", "phone", "first_name", "last_name", "timezone", "locale", "stage", "external_id"}
HORIZON = 90 * 86400
#: what a timeline line does: set fields, raise an event, or open or click the last message sent from a template
LINE_KINDS = ("set", "event", "opened", "clicked")
#: the engagement lines: the event suffix each raises on the message's channel
ENGAGEMENT = {"opened": "opened", "clicked": "clicked"}


class TimelineError(ValueError):
    """A timeline line is malformed; the message names the line."""


@dataclass
class Line:
    number: int
    at: int
    contact: str
    data: dict[str, Any]
    #: ``file:line``, for errors
    where: str = "timeline"


def parse_time(value: Any, where: str) -> int:
    if not isinstance(value, str):
        raise TimelineError(f"{where}: 'at' must be an ISO-8601 UTC time such as 2026-03-02T09:00:00Z")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise TimelineError(f"{where}: {value!r} is not an ISO-8601 time such as 2026-03-02T09:00:00Z") from None
    if parsed.tzinfo is None:
        raise TimelineError(f"{where}: {value!r} has no time zone; end it with Z for UTC")
    return to_ts(parsed)


def read_timeline(lines: Iterable[str], name: str = "timeline") -> list[Line]:
    out: list[Line] = []
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        where = f"{name}:{number}"
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise TimelineError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(data, dict) or "contact" not in data or not any(k in data for k in LINE_KINDS):
            raise TimelineError(
                f"{where}: each line needs 'at', 'contact' and either 'set' or 'event' "
                "(or 'opened' / 'clicked' naming the template of a message the contact was sent)"
            )
        out.append(Line(number, parse_time(data.get("at"), where), str(data["contact"]), data, where))
    out.sort(key=lambda line: (line.at, line.number))
    return out


def timeline_fields(lines: list[Line]) -> set[str]:
    fields: set[str] = set()
    for line in lines:
        fields.update(k for k in line.data.get("set", {}) if k not in ("tags", "consent"))
    return fields


def timeline_moment_fields(lines: list[Line]) -> dict[str, str]:
    """The custom fields the timeline only ever gives dates (``2026-04-10``) or only date-times
    (``2026-04-10T09:00:00Z``): name → ``date`` / ``datetime``, the type a live instance would define them with,
    so that a rule's `set` stores a moment in the field's form as it would live."""
    kinds: dict[str, set[str]] = {}
    for line in lines:
        values = line.data.get("set")
        for name, value in values.items() if isinstance(values, dict) else ():  # a malformed line is reported later
            if name in CONTACT_ATTRS or name in ("tags", "consent", "score") or name in BUILTIN_CONTACT_FIELDS:
                continue
            moment = parse_date_value(value)
            kind = "other" if moment is None else "datetime" if isinstance(moment, datetime) else "date"
            kinds.setdefault(name, set()).add(kind)
    return {name: found.pop() for name, found in kinds.items() if found in ({"date"}, {"datetime"})}


class Simulation:
    def __init__(self, app: Any, trace: bool = False):
        from ..db import get_session

        self.app = app
        self.session = get_session()
        self.trace = trace
        self.contacts: dict[str, int] = {}
        #: the timeline's opens and clicks, shown among the effects at their time
        self.engaged: list[dict[str, Any]] = []
        self.ctx = EngineContext(
            self.session,
            app.config,
            0,
            plugins=app.extensions["nudge.plugins"],
            inline_delivery=True,
            deliver_now=self._deliver,
        )

    def define_fields(self, types: dict[str, str]) -> None:
        """Define the custom fields *types* names (name → type) in the throwaway instance, as an operator would."""
        known = set(self.session.scalars(select(FieldDefinition.name)))
        self.session.add_all(FieldDefinition(name=n, type=t) for n, t in sorted(types.items()) if n not in known)
        self.session.flush()

    def load_rules(self, sources: list[tuple[str, str]], fields: set[str]) -> None:
        vocabulary = simulation_vocabulary(self.app, fields)
        plans, errors, _warnings = compile_rules(sources, vocabulary)
        if errors:
            raise RuleError(errors)
        apply_plans(self.session, plans, sources={p["name"]: p.get("source", "") for p in plans})
        self.session.commit()

    # -- timeline lines -------------------------------------------------------------------------
    def apply_line(self, line: Line) -> None:
        if "set" in line.data:
            self._set(line)
        if "event" in line.data:
            contact = self._contact(line.contact, create=True)
            props = line.data.get("props") or {}
            if not isinstance(props, dict):
                raise TimelineError(f"{line.where}: props must be an object")
            self._event(contact, str(line.data["event"]), props, "timeline")
        for what in ENGAGEMENT:
            if what in line.data:
                self._engage(line, what)
        dispatch.drain(self.ctx)

    def _event(self, contact: Contact, name: str, props: dict[str, Any], source: str) -> None:
        """Store an event at the simulated now and let the engine handle it, as a worker would."""
        now = to_dt(self.ctx.now)
        event = Event(
            contact_id=contact.id,
            name=name,
            props=props,
            source=source,
            occurred_at=now,
            received_at=now,
            processed_at=now,
        )
        self.session.add(event)
        self.session.flush()
        attribution.attribute(self.session, self.ctx.config, [event.id])
        dispatch.handle_event(self.ctx, event)

    def _engage(self, line: Line, what: str) -> None:
        """``{"opened": "welcome"}`` / ``{"clicked": "welcome", "url": …}``: the contact opens or clicks the last
        message sent to them from that template, as the tracking endpoints record it (``machine``: a proxy's or a
        scanner's, false unless the line says so)."""
        template = line.data[what]
        if line.contact not in self.contacts or not isinstance(template, str):
            raise TimelineError(f"{line.where}: {what!r} names the template of a message {line.contact!r} was sent")
        self.ctx.commit()  # the sends so far are in the outbox
        message = self.session.execute(
            select(Message.key, Message.channel)
            .where(
                Message.contact_id == self.contacts[line.contact],
                Message.template == template,
                Message.status == MessageStatus.SENT.value,
            )
            .order_by(Message.id.desc())
            .limit(1)
        ).first()
        if message is None:
            raise TimelineError(
                f"{line.where}: {line.contact!r} was sent no {template!r} message by {iso(self.ctx.now)} to {what[:-2]}"
            )
        props: dict[str, Any] = {"message": message.key, "machine": bool(line.data.get("machine", False))}
        if what == "clicked":
            props["url"] = str(line.data.get("url", ""))
        contact = self.session.get_one(Contact, self.contacts[line.contact])
        self._event(contact, f"{message.channel}.{ENGAGEMENT[what]}", props, "tracking")
        self.engaged.append(
            {
                "at": iso(self.ctx.now),
                "contact": line.contact,
                "action": what,
                "channel": message.channel,
                "template": template,
                "machine": props["machine"],
            }
        )

    def _contact(self, key: str, create: bool = False) -> Contact:
        if key in self.contacts:
            return self.session.get_one(Contact, self.contacts[key])
        contact = Contact(external_id=key, fields={}, created_at=to_dt(self.ctx.now), updated_at=to_dt(self.ctx.now))
        self.session.add(contact)
        self.session.flush()
        self.contacts[key] = contact.id
        runtime.raise_event(self.ctx, contact.id, "contact.created", {})
        dispatch.contact_changed(self.ctx, contact, None)
        return contact

    def _set(self, line: Line) -> None:
        new = line.contact not in self.contacts
        contact = self._contact(line.contact, create=True)
        values = line.data["set"]
        if not isinstance(values, dict):
            raise TimelineError(f"{line.where}: 'set' must be an object")
        changed: set[str] = set()
        for key, value in values.items():
            if key == "tags":
                wanted = set(value or [])
                have = set(self.session.scalars(select(ContactTag.tag).where(ContactTag.contact_id == contact.id)))
                for tag in sorted(wanted - have):
                    runtime.add_tag(self.ctx, contact, tag)
                for tag in sorted(have - wanted):
                    runtime.remove_tag(self.ctx, contact, tag)
            elif key == "consent":
                for channel, status in (value or {}).items():
                    record_consent(
                        self.session,
                        contact.id,
                        channel,
                        status == "granted",
                        source="timeline",
                        at=to_dt(self.ctx.now),
                    )
            elif key == "score":
                if new:
                    contact.score = value
                else:
                    runtime.change_score(self.ctx, contact, value)
            elif key in CONTACT_ATTRS:
                if getattr(contact, key) != value:
                    setattr(contact, key, value)
                    changed.add(key)
            elif (contact.fields or {}).get(key) != value:
                contact.fields = {**(contact.fields or {}), key: value}
                changed.add(key)
        if changed:
            runtime.touch(self.ctx, contact)
        self.session.flush()
        if new:
            dispatch.contact_changed(self.ctx, contact, None)
        elif changed:
            runtime.raise_event(self.ctx, contact.id, "contact.updated", {"fields": sorted(changed)})
            dispatch.contact_changed(self.ctx, contact, changed)

    # -- the clock ------------------------------------------------------------------------------
    def run(self, lines: list[Line], until: int | None = None) -> None:
        if not lines:
            return
        until = until if until is not None else lines[-1].at + HORIZON
        i = 0
        self.ctx.now = lines[0].at
        for _ in range(10_000_000):
            next_line = lines[i].at if i < len(lines) else None
            next_due = dispatch.next_due(self.ctx)
            candidates = [t for t in (next_line, next_due) if t is not None]
            if not candidates:
                return
            t = max(min(candidates), self.ctx.now)
            if t > until:
                return
            self.ctx.now = t
            if next_line is not None and next_line <= t:
                while i < len(lines) and lines[i].at <= t:
                    self.apply_line(lines[i])
                    i += 1
            else:
                dispatch.advance(self.ctx, dispatch.due_enrolment_ids(self.ctx, 10_000))
                dispatch.fire_trigger_timers(self.ctx)
                dispatch.fire_schedule_timers(self.ctx)
            self.ctx.commit()
        raise RuntimeError("simulation did not settle")

    def funnels(self) -> list[dict[str, Any]]:
        """Every rule's funnel after the run (docs/stats.md), as ``nudge stats --json`` gives it."""
        from .funnel import rule_funnel
        from .rollup import rollup

        self.ctx.commit()
        rollup(self.session, limit=None)
        names = self.session.scalars(select(Rule.name).order_by(Rule.name))
        return [rule_funnel(self.session, name) for name in list(names)]

    def _deliver(self, ids: list[int]) -> None:
        with Delivery(self.session, self.app, now=self.ctx.now, capture=[]) as delivery:
            delivery.deliver(ids)

    # -- output ---------------------------------------------------------------------------------
    def effects(self) -> Iterator[dict[str, Any]]:
        """The effects in time order, the timeline's opens and clicks among them (before what they caused)."""
        engaged = list(self.engaged)
        for effect in self._journey_effects():
            while engaged and engaged[0]["at"] <= effect["at"]:
                yield engaged.pop(0)
            yield effect
        yield from engaged

    def _journey_effects(self) -> Iterator[dict[str, Any]]:
        self.ctx.commit()
        rules: dict[int | None, str] = dict(self.session.execute(select(Rule.id, Rule.name)).all())
        keys = {cid: key for key, cid in self.contacts.items()}
        for row in self.session.scalars(select(JourneyLog).order_by(JourneyLog.at, JourneyLog.id)):
            if not self.trace and row.action not in EFFECTS:
                continue
            out: dict[str, Any] = {
                "at": iso(row.at),
                "contact": keys.get(row.contact_id, row.contact_id),
                "rule": rules.get(row.rule_id),
                "action": row.action,
            }
            out.update({k: v for k, v in (row.data or {}).items() if k != "message"})
            if isinstance(out.get("until"), int):  # a wait's end, kept as UNIX seconds
                out["until"] = iso(out["until"])
            yield out


def simulation_vocabulary(app: Any, fields: set[str]) -> Any:
    """The plugins' vocabulary where every template and endpoint exists, every event may happen and every field
    named in the timeline is known."""
    from dataclasses import replace

    from .vocabulary import plugin_vocabulary

    base = plugin_vocabulary(app.extensions["nudge.plugins"])
    contact_fields = dict(base.contact_fields)
    for name in fields:
        contact_fields.setdefault(name, "any")
    return replace(
        base,
        channels=dict.fromkeys(base.channels),
        events=None,
        contact_fields=contact_fields,
        segments=None,
        rules=None,
        raised=None,
    )


#: the settings of the throwaway instance a simulation runs in (an in-memory database, every installed plugin)
SIMULATION_SETTINGS = {
    "DATABASE_URL": "sqlite://",
    "SECRET_KEY": "simulation-secret-key-000",
    "LOAD_ENTRY_POINTS": True,
}


@contextmanager
def throwaway_instance(
    make_app: Callable[[dict[str, Any]], Any], config: dict[str, Any] | None = None
) -> Iterator[Any]:
    """A throwaway app for one simulation, built by *make_app* (``create_app``, which the engine never imports)
    with :data:`SIMULATION_SETTINGS`, a temporary ``HOME`` and *config*; released afterwards.

    Its fresh database gets the models' schema copied from one built once per process
    (:mod:`.blank_schema`) rather than by replaying every migration, which took a second or more per run (the
    editor's "Try it" runs one per click); the two schemas are the same (``tests/test_migrations.py``), and a
    throwaway database is never upgraded later.
    """
    with tempfile.TemporaryDirectory(prefix="nudge-sim-") as home:
        app = make_app({**SIMULATION_SETTINGS, "HOME": home, **(config or {}), "MIGRATE_ON_START": False})
        try:
            create_schema(app.extensions["nudge.db"].engine)
            yield app
        finally:
            app.extensions["nudge.db"].dispose()


def simulate(
    app: Any,
    sources: list[tuple[str, str]],
    timeline: list[str],
    until: str | None = None,
    trace: bool = False,
    timeline_name: str = "timeline",
    fields: Iterable[str] = (),
    funnels: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Run *sources* against *timeline* (named *timeline_name* in errors) in *app*, a throwaway instance
    (:func:`throwaway_instance`); return the effects in time order.

    :param fields: contact fields the rules may name besides those the timeline sets (an instance's custom fields).
    :param funnels: when given, receives every rule's funnel after the run (``nudge simulate --stats``).
    """
    lines = read_timeline(timeline, timeline_name)
    with app.app_context():
        sim = Simulation(app, trace=trace)
        start = lines[0].at if lines else to_ts(datetime.now().astimezone())
        sim.ctx.now = start
        sim.define_fields(timeline_moment_fields(lines))
        sim.load_rules(sources, timeline_fields(lines) | set(fields))
        sim.run(lines, parse_time(until, "--until") if until else None)
        effects = list(sim.effects())
        if funnels is not None:
            funnels.extend(sim.funnels())
        return effects


__all__ = ["SIMULATION_SETTINGS", "Simulation", "TimelineError", "simulate", "throwaway_instance"]
