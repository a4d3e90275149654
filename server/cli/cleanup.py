"""``nudge cleanup``: delete what is past its retention now, with counts per table (docs/retention.md)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import click


def scheduled_cleanup(app: Any) -> Callable[[bool], None]:
    """The scheduler's cleanup, advanced a few batches per call (inside an app context), on its own session."""
    from sqlalchemy.orm import Session

    from ..db import get_db, log_failure
    from ..engine.retention import Scheduled
    from ..models import utcnow

    log = logging.getLogger("server.scheduler")
    state = Scheduled()
    session = Session(get_db(app).engine, expire_on_commit=False)

    def tick(finish: bool = False) -> None:
        try:
            done = state.tick(session, app.config, utcnow(), finish=finish)
        except Exception as exc:  # a failed batch is retried by the next run; the scheduler goes on
            session.rollback()
            state.running = None
            # a full disk (what a cleanup frees) or the database away is its state: one line, not a traceback
            log_failure(log, "retention cleanup failed; the next one runs in CLEANUP_INTERVAL seconds", exc)
            return
        if done is not None:
            log.info("retention cleanup deleted %s", done or "nothing")

    return tick


def register(main: click.Group) -> None:
    @main.command()
    @click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
    def cleanup(dry_run: bool) -> None:
        """Delete events, journey logs, finished journeys and outbox history past their retention (RETAIN_*)."""
        from ..cli import build_app
        from ..db import get_session
        from ..engine.retention import TABLES, Cleanup, clean

        app = build_app()
        with app.app_context():
            session = get_session()
            planned = clean(session, app.config, dry_run=True)
            if dry_run:
                counts = planned
            else:
                counts = {name: 0 for name, _ in TABLES}
                with click.progressbar(length=max(1, sum(planned.values())), label="deleting", file=sys.stderr) as bar:
                    for name, count in Cleanup(session, app.config).run():
                        counts[name] += count
                        bar.update(count)
        verb = "would delete" if dry_run else "deleted"
        for name, setting in TABLES:
            kept = f"older than {app.config[setting]} days" if setting else "expired"
            click.echo(f"{name:<24} {verb} {counts[name]:>10}  ({kept})")
        click.echo(f"{'total':<24} {verb} {sum(counts.values()):>10}")
