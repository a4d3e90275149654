"""``nudge simulate``, ``nudge explain``, ``nudge apply`` and ``nudge rules``: the journey engine's commands."""
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


def register(group: click.Group) -> None:
    @group.command()
    @click.argument("rules", nargs=-1, required=True, type=click.Path(exists=True))
    @click.option("--timeline", required=True, type=click.File("r"), help="JSON Lines of contact changes and events.")
    @click.option("--until", help="Stop at this ISO-8601 time (default: 90 days after the last line).")
    @click.option("--trace", is_flag=True, help="Also print the engine's reasoning (branches, waits, timeouts).")
    def simulate(rules: tuple[str, ...], timeline, until: str | None, trace: bool) -> None:
        """Run RULES against a timeline on a virtual clock; print one JSON effect per line."""
        from ..config import ConfigError
        from ..engine.rules import RuleError
        from ..engine.simulate import TimelineError, simulate as run

        sources = _read_sources(rules)
        try:
            effects = run(sources, timeline.read().splitlines(), until=until, trace=trace, timeline_name=timeline.name)
        except RuleError as exc:
            click.echo("\n".join(exc.diagnostics), err=True)
            sys.exit(1)
        except (TimelineError, ConfigError) as exc:
            raise click.ClickException(str(exc)) from None
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
    @click.option("--migrate", is_flag=True,
                  help="Move contacts mid-journey to the new version of changed rules (same step, by identity).")
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

    @group.command()
    @click.option("--status", "statuses", multiple=True, default=("failed", "unknown"), show_default=True,
                  type=click.Choice(["pending", "sending", "sent", "failed", "unknown", "suppressed"]),
                  help="Which outbox rows to list (repeat for several).")
    @click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
    def messages(statuses: tuple[str, ...], limit: int) -> None:
        """List outbox messages for operators: by default the failed ones and those with an unknown outcome."""
        from sqlalchemy import select

        from ..db import get_session
        from ..models import Contact, Message
        from . import build_app

        app = build_app()
        with app.app_context():
            rows = get_session().execute(
                select(Message, Contact.email).outerjoin(Contact, Contact.id == Message.contact_id)
                .where(Message.status.in_(statuses)).order_by(Message.id.desc()).limit(limit)).all()
        if not rows:
            click.echo(f"no messages with status {' or '.join(statuses)}")
        for msg, email in rows:
            click.echo(f"{msg.id}\t{msg.status}\t{msg.channel}/{msg.template}\t{email or msg.contact_id}\t"
                       f"attempts={msg.attempts}\t{msg.error or ''}")

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
                result = create_broadcast(session, app.extensions["nudge.plugins"], channel, template, segment,
                                          broadcast_id)
            except BroadcastError as exc:
                raise click.ClickException(str(exc)) from None
            session.commit()
            enqueue_broadcast(result)
        click.echo(f"broadcast {result.id}: {result.members} member(s) of {segment!r}, "
                   f"{len(result.message_ids)} message(s) queued")

    @group.group()
    def rules() -> None:
        """List, pause and resume rules."""

    @rules.command("list")
    def rules_list() -> None:
        """List rules with their status, version and contacts mid-journey."""
        from ..db import get_session
        from ..engine.apply import rule_rows
        from . import build_app

        app = build_app()
        with app.app_context():
            rows = rule_rows(get_session())
        if not rows:
            click.echo("no rules yet: write some and run `nudge apply DIR`")
        for name, status, version, active in rows:
            click.echo(f"{name}\t{status}\tv{version}\t{active} in flight")

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
                    except LookupError as exc:
                        raise click.ClickException(str(exc)) from None
                    if verb == "resume":  # its timers fell away while it was paused
                        from ..engine.apply import replan_timers

                        replan_timers(session, app, [store.RuleChange(name, "resume")])
                    session.commit()
                click.echo(f"{verb}d {name}")

            command.__doc__ = f"{verb.capitalize()} the rule NAME."
        make(verb)
