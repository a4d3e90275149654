"""``nudge config docs``: the reference of every setting, generated from the declarations."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Add ``config`` to the ``nudge`` command group."""
    group.add_command(config_group, "config")


@click.group("config")
def config_group() -> None:
    """Settings."""


@config_group.command("docs")
def config_docs() -> None:
    """Print docs/configuration.md: every core and built-in plugin setting (make docs writes it)."""
    from ..configdoc import generate

    click.echo(generate(), nl=False)
