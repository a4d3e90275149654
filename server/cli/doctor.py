"""``nudge doctor``: unsafe defaults and what blocks sending, one line per check."""

from __future__ import annotations

import sys

import click


def register(group: click.Group) -> None:
    """Add ``doctor`` to the ``nudge`` command group."""
    group.add_command(doctor_command, "doctor")


@click.command("doctor")
def doctor_command() -> None:
    """Check the set-up: one line per check (ok / warn / error) with what to do.

    Exits with 1 when something blocks sending (an error); warnings alone exit with 0.
    """
    from ..doctor import run_checks
    from . import build_app

    app = build_app()
    with app.app_context():
        checks = run_checks(app)
    for check in checks:
        click.echo(f"{check.status:<5}  {check.name} — {check.detail}")
    errors = sum(check.status == "error" for check in checks)
    warnings = sum(check.status == "warn" for check in checks)
    click.echo(f"{errors} error(s), {warnings} warning(s)" + (": sending is blocked" if errors else ""), err=True)
    sys.exit(1 if errors else 0)
