"""The journey engine's commands: ``nudge simulate``, ``nudge explain``, ``nudge apply``, ``nudge rules``,
``nudge messages``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


def _read_sources(paths: tuple[str, ...]) -> list[tuple[str, str]]:
    sources = []
    for name in paths:
        path = Path(name)
        files = sorted(path.rglob("*.nudge")) if path.is_dir() else [path]
        for file in files:
            try:
                sources.append((str(file), file.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError) as exc:
                raise click.ClickException(f"cannot read {file}: {exc}") from None
    if not sources:
        raise click.ClickException("no rules given: pass .nudge files or folders holding them")
    return sources


def _ids(ids: list[int]) -> str:
    return " ".join(map(str, ids[:20])) + (" …" if len(ids) > 20 else "")


def _message_lines(session, messages: list) -> list[str]:
    """One line per message: id, status, channel/template, contact, attempts, next try, last error."""
    from sqlalchemy import select

    from ..engine.timeutil import iso, to_ts
    from ..models import Contact

    emails = (
        dict(
            session.execute(
                select(Contact.id, Contact.email).where(
                    Contact.id.in_({m.contact_id for m in messages if m.contact_id})
                )
            ).all()
        )
        if messages
        else {}
    )
    return [
        f"{m.id}\t{m.status}\t{m.channel}/{m.template}\t{emails.get(m.contact_id) or m.contact_id}\t"
        f"attempts={m.attempts}\t"
        + (f"next try {iso(to_ts(m.next_attempt_at))}\t" if m.status == "pending" and m.next_attempt_at else "")
        + (m.error or "")
        for m in messages
    ]


def _message_rows(session, statuses: tuple[str, ...], limit: int) -> list[str]:
    from sqlalchemy import select

    from ..models import Message

    return _message_lines(
        session,
        list(
            session.scalars(
                select(Message).where(Message.status.in_(statuses)).order_by(Message.id.desc()).limit(limit)
            )
        ),
    )


def _stuck_line(work) -> str:
    from ..engine.timeutil import iso

    state = "parked" if work.parked else f"retrying at {iso(work.retry_at)}" if work.retry_at else "retrying"
    return (
        f"{work.kind} {work.id}\t{state}\t{work.what}\tcontact {work.contact_id}\tattempts={work.attempts}\t"
        f"{work.error}"
    )


def register(group: click.Group) -> None:
    @group.command()
    @click.argument("rules", nargs=-1, required=True, type=click.Path(exists=True))
    @click.option("--timeline", required=True, type=click.File("r"), help="JSON Lines of contact changes and events.")
    @click.option("--until", help="Stop at this ISO-8601 time (default: 90 days after the last line).")
    @click.option("--trace", is_flag=True, help="Also print the engine's reasoning (branches, waits, timeouts).")
    @click.option("--stats", is_flag=True, help="Print each rule's funnel (as `nudge stats` does) instead.")
    def simulate(rules: tuple[str, ...], timeline, until: str | None, trace: bool, stats: bool) -> None:
        """Run RULES against a timeline on a virtual clock; print one JSON effect per line."""
        from ..config import ConfigError
        from ..engine.rules import RuleError
        from ..engine.simulate import TimelineError
        from ..simulation import simulate as run

        sources = _read_sources(rules)
        funnels: list[dict] | None = [] if stats else None
        lines = timeline.read().splitlines()
        try:
            effects = run(sources, lines, until=until, trace=trace, timeline_name=timeline.name, funnels=funnels)
        except RuleError as exc:
            click.echo("\n".join(exc.diagnostics), err=True)
            sys.exit(1)
        except (TimelineError, ConfigError) as exc:
            raise click.ClickException(str(exc)) from None
        if funnels is not None:
            from .stats import funnel_table

            click.echo("\n\n".join("\n".join(funnel_table(funnel)) for funnel in funnels))
            return
        for effect in effects:
            click.echo(json.dumps(effect))

    @group.command()
    @click.argument("contact")
    @click.argument("rule", required=False)
    def explain(contact: str, rule: str | None) -> None:
        """Print the journey trace of CONTACT (email, external id or id), optionally for one RULE."""
        from ..db import get_session
        from ..engine.explain import explain_contact
        from . import build_app

        app = build_app()
        with app.app_context():
            try:
                lines = explain_contact(get_session(), contact, rule)
            except LookupError as exc:
                raise click.ClickException(str(exc)) from None
        for line in lines:
            click.echo(line)

    @group.command()
    @click.argument("directory", type=click.Path(exists=True, file_okay=False))
    @click.option("--plan", "plan_only", is_flag=True, help="Only print what would change.")
    @click.option(
        "--migrate",
        is_flag=True,
        help="Move contacts mid-journey to the new version of changed rules (same step, by identity).",
    )
    def apply(directory: str, plan_only: bool, migrate: bool) -> None:
        """Check and apply a folder of rules and templates in one transaction.

        Contacts mid-journey finish on the version they entered with, unless --migrate.
        """
        from ..db import get_session
        from ..engine.apply import ApplyError, apply_directory, format_changes
        from . import build_app

        app = build_app()
        with app.app_context():
            try:
                result = apply_directory(get_session(), app, Path(directory), dry_run=plan_only, migrate=migrate)
            except ApplyError as exc:
                click.echo("\n".join(exc.problems), err=True)
                raise click.ClickException(f"nothing applied: {len(exc.problems)} problem(s) in {directory}") from None
        for line in format_changes(result):
            click.echo(line)
        if plan_only:
            click.echo("(plan only: nothing was changed)")

    @group.group(invoke_without_command=True)
    @click.option(
        "--status",
        "statuses",
        multiple=True,
        type=click.Choice(["pending", "sending", "sent", "failed", "unknown", "suppressed", "cancelled"]),
        help="Only outbox rows with this status (repeat for several).",
    )
    @click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
    @click.pass_context
    def messages(ctx: click.Context, statuses: tuple[str, ...], limit: int) -> None:
        """What needs an operator: failed and unknown sends, sends retrying, events and journeys failing.

        Resolve with `nudge messages resend` and `nudge messages unpark`.
        """
        if ctx.invoked_subcommand is not None:
            return
        from ..db import get_session
        from ..engine.stuck import retrying_messages, stuck_work
        from . import build_app

        app = build_app()
        with app.app_context():
            session = get_session()
            rows = _message_rows(session, statuses or ("failed", "unknown"), limit)
            retrying = [] if statuses else _message_lines(session, retrying_messages(session, limit))
            work = [] if statuses else stuck_work(session, limit)
        if statuses:
            if not rows:
                click.echo(f"no messages with status {' or '.join(statuses)}")
            for line in rows:
                click.echo(line)
            return
        if not (rows or retrying or work):
            click.echo("nothing needs a look: no failed, unknown or retrying sends, no failing events or journeys")
        for title, lines in (
            ("failed and unknown sends", rows),
            ("sends retrying", retrying),
            (
                "events and journeys failing (retried with back-off, parked after the last try)",
                [_stuck_line(w) for w in work],
            ),
        ):
            if lines:
                click.echo(f"# {title}")
                for line in lines:
                    click.echo(line)

    @messages.command("resend")
    @click.argument("ids", nargs=-1, type=click.IntRange(1, 2**31 - 1))
    @click.option(
        "--status",
        type=click.Choice(["unknown", "failed"]),
        help="Resend every message with this status instead of naming ids.",
    )
    def messages_resend(ids: tuple[int, ...], status: str | None) -> None:
        """Send messages again: IDS, or every one with --status (only failed or unknown ones).

        An unknown message may have reached the recipient already: check with the provider first.
        """
        if bool(ids) == bool(status):
            raise click.UsageError("name message ids, or --status unknown|failed (not both)")
        from ..contacts import audit
        from ..db import get_session
        from ..engine.jobs import deliver_messages
        from ..engine.stuck import ResendError, resend
        from ..queue import get_queue
        from . import build_app

        app = build_app()
        with app.app_context():
            session = get_session()
            try:
                resent = resend(session, "cli", ids, status)
            except ResendError as exc:
                raise click.ClickException(f"nothing resent: {exc}") from None
            audit(session, "cli", "messages.resent", "message", None, count=len(resent), ids=resent[:100])
            session.commit()
            if resent and not get_queue().enqueue_send(deliver_messages, resent):
                click.echo("Redis cannot be reached: the scheduler sends them once it is back", err=True)
        click.echo(f"{len(resent)} message(s) queued to be sent again" + (f": {_ids(resent)}" if resent else ""))

    @messages.command("unpark")
    @click.option("--event", "events", multiple=True, type=click.IntRange(1, 2**31 - 1), help="Only this event.")
    @click.option(
        "--journey",
        "journeys",
        multiple=True,
        type=click.IntRange(1, 2**31 - 1),
        help="Only this journey (enrolment id).",
    )
    def messages_unpark(events: tuple[int, ...], journeys: tuple[int, ...]) -> None:
        """Try parked events and journeys again now, with fresh attempts (all of them unless named).

        Fix what made them fail first (`nudge messages` shows each error).
        """
        from ..contacts import audit
        from ..db import get_session
        from ..engine.stuck import unpark
        from . import build_app

        app = build_app()
        with app.app_context():
            session = get_session()
            unparked = unpark(session, events, journeys)
            audit(session, "cli", "work.unparked", "engine", None, events=unparked[0], journeys=unparked[1])
            session.commit()
        click.echo(f"{unparked[0]} event(s) and {unparked[1]} journey(s) will be tried again")

    @group.command()
    @click.argument("channel")
    @click.argument("template")
    @click.option("--segment", required=True, help="Send to every contact in this segment now.")
    @click.option("--id", "broadcast_id", help="Reuse to resume a broadcast: nobody gets it twice.")
    def broadcast(channel: str, template: str, segment: str, broadcast_id: str | None) -> None:
        """Send TEMPLATE over CHANNEL to every member of a segment (consent checked per contact at sending)."""
        from ..db import get_session
        from ..engine.broadcast import BroadcastError, create_broadcast, enqueue_broadcast
        from . import build_app

        app = build_app()
        with app.app_context():
            session = get_session()
            try:
                result = create_broadcast(
                    session, app.extensions["nudge.plugins"], channel, template, segment, broadcast_id
                )
            except BroadcastError as exc:
                raise click.ClickException(str(exc)) from None
            session.commit()
            enqueue_broadcast(result)
        click.echo(
            f"broadcast {result.id}: {result.members} member(s) of {segment!r}, "
            f"{len(result.message_ids)} message(s) queued"
        )

    @group.command("broadcast-cancel")
    @click.argument("broadcast_id")
    def broadcast_cancel(broadcast_id: str) -> None:
        """Withdraw the messages of broadcast BROADCAST_ID that no sender has taken yet (they are never sent)."""
        from ..db import get_session
        from ..engine.broadcast import broadcast_exists, cancel_broadcast
        from . import build_app

        app = build_app()
        with app.app_context():
            session = get_session()
            if not broadcast_exists(session, broadcast_id):
                raise click.ClickException(f"no broadcast {broadcast_id!r} (`nudge messages` lists message keys)")
            withdrawn = cancel_broadcast(session, broadcast_id, "cli")
            session.commit()
        click.echo(f"broadcast {broadcast_id}: {withdrawn} message(s) withdrawn")

    @group.group()
    def rules() -> None:
        """List, pause and resume rules."""

    @rules.command("list")
    def rules_list() -> None:
        """List rules with their status, version and contacts mid-journey."""
        from ..db import get_session
        from ..engine.rulestats import rule_rows
        from ..engine.timeutil import to_ts
        from ..models import utcnow
        from . import build_app

        app = build_app()
        with app.app_context():
            rows = rule_rows(get_session(), to_ts(utcnow()))
        if not rows:
            click.echo("no rules yet: write some and run `nudge apply DIR`")
        for row in rows:  # a draft rule has no active version; a newer draft of a rule is named after it
            click.echo(
                f"{row.name}\t{row.status}\t{f'v{row.active}' if row.active else '-'}\t{row.in_flight} in flight"
                + (f"\tdraft v{row.draft}" if row.draft else "")
            )

    for verb in ("pause", "resume"):

        def make(verb: str):
            @rules.command(verb)
            @click.argument("name")
            def command(name: str) -> None:
                from ..db import get_session
                from ..engine import rules as store
                from . import build_app

                app = build_app()
                with app.app_context():
                    session = get_session()
                    try:
                        getattr(store, verb)(session, name)
                    except (LookupError, store.RuleStateError) as exc:
                        raise click.ClickException(str(exc)) from None
                    if verb == "resume":  # its timers fell away while it was paused
                        from ..engine.apply import replan_timers

                        replan_timers(session, app, [store.RuleChange(name, "resume")])
                    session.commit()
                click.echo(f"{verb}d {name}")

            command.__doc__ = f"{verb.capitalize()} the rule NAME."

        make(verb)
