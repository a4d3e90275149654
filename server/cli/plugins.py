"""``nudge plugins``: the installed plugins, their versions, what each registers, and what failed to load."""

from __future__ import annotations

import json

import click

_KINDS = ("channels", "triggers", "actions", "conditions", "filters", "blueprints", "events")


def register(group: click.Group) -> None:
    """Add ``plugins`` to the ``nudge`` command group."""
    group.add_command(plugins_command, "plugins")


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
def plugins_command(as_json: bool) -> None:
    """List plugins, their versions and what each registers; broken ones with their error."""
    from . import build_app

    app = build_app()
    rows = app.extensions["nudge.plugins"].describe(app)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        origin = "built-in" if row["source"] == "built-in" else f"entry point of {row.get('dist') or '?'}"
        if row["error"]:
            click.echo(f"{row['name']} {row['version']}  FAILED to load: {row['error']}")
            continue
        click.echo(f"{row['name']} {row['version']}  ({origin})")
        registered = [(kind, row[kind]) for kind in _KINDS if row.get(kind)]
        for kind, names in registered:
            click.echo(f"  {kind}: {', '.join(names)}")
        if not registered:
            click.echo("  (registers nothing)")
