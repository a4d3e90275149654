"""``nudge check``: rules and templates checked exactly as ``nudge apply`` checks them.

The names rules may use come from the instance when one is reachable (its templates, custom fields,
segments and the events it has received), else from the installed plugins; either way the checking
itself is :func:`server.engine.apply.check_folder` / :func:`server.engine.rules.check_sources`, the code
``nudge apply`` runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from .lang import plural, rules_files, template_names

Names = Callable[[Any], Any]


def register(group: click.Group) -> None:
    """Add ``check`` to the ``nudge`` command group."""
    group.add_command(check_command, "check")


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--templates",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="For FILE arguments: a folder laid out as <channel>/<name>.<part> "
    "(default: templates/ next to each file). A DIR uses DIR/templates, as `nudge apply DIR` does.",
)
def check_command(files: tuple[str, ...], templates: Path | None) -> None:
    """Check rules and templates: print every problem; exit 1 if there is an error.

    A DIR is checked exactly as `nudge apply DIR` would check it (its *.nudge files and templates/ as one
    unit); FILEs are checked together against the templates next to them.
    """
    from ..engine.apply import check_folder
    from ..engine.rules import check_sources

    folders = [Path(name) for name in files if Path(name).is_dir()]
    loose = [path for name in files if not Path(name).is_dir() for path in rules_files((name,))]
    with instance_names() as (names, online, plugins):
        results = [check_folder(folder, names, plugins).checked for folder in folders]
        if loose:

            def for_file(filename: str) -> Any:
                folder = templates if templates is not None else Path(filename).parent / "templates"
                found = template_names(folder) if folder.is_dir() else {}
                vocabulary = names([(channel, name) for channel, known in found.items() for name in known])
                if online:
                    return vocabulary
                # a lone file without an instance: a channel with no templates folder takes any name
                return replace(
                    vocabulary,
                    channels={
                        channel: known if channel in found else None for channel, known in vocabulary.channels.items()
                    },
                )

            results.append(check_sources([(str(path), _read(path)) for path in loose], for_file))
    errors = warnings = rules = count = 0
    for checked in results:
        for _is_error, text in checked.problems:
            click.echo(text)
            click.echo()
        errors += len(checked.errors)
        warnings += len(checked.warnings)
        rules += checked.rules
        count += checked.files
    counted = f"{plural(count, 'file')}, {plural(rules, 'rule')}"
    if errors:
        click.echo(f"{counted}: {plural(errors, 'error')}, {plural(warnings, 'warning')}", err=True)
        raise SystemExit(1)
    suffix = f" ({plural(warnings, 'warning')})" if warnings else ""
    click.echo(f"{counted}: no problems{suffix}")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror}") from None


@contextmanager
def instance_names() -> Iterator[tuple[Names, bool, Any]]:
    """What rules may name, as ``names(templates)``, whether an instance gives them, and the plugins: the
    instance's when one is found (the lookup every command makes; none is ever created), else the
    installed plugins' (entry points included)."""
    from sqlalchemy.exc import SQLAlchemyError

    from ..app import create_app
    from ..config import ConfigError, NoInstance
    from ..db import DatabaseUnavailable, get_session
    from ..engine.vocabulary import instance_vocabulary, plugin_vocabulary, with_templates
    from ..plugins import PluginError

    try:
        app = create_app({"MIGRATE_ON_START": False}, create=False)
    except NoInstance:
        app = None
    except (ConfigError, DatabaseUnavailable, PluginError) as exc:
        _unusable(exc)
        app = None
    if app is not None:
        try:
            with app.app_context():  # an instance not migrated yet lacks tables: say so, do not trace back
                instance_vocabulary(get_session(), app.extensions["nudge.plugins"])
        except SQLAlchemyError as exc:
            app.extensions["nudge.queue"].close()
            app.extensions["nudge.db"].dispose()
            _unusable(f"{str(getattr(exc, 'orig', None) or exc).splitlines()[0]}; run `nudge db upgrade`")
            app = None
    if app is None:
        plugins = _plugins()
        yield (lambda templates: with_templates(plugin_vocabulary(plugins), templates)), False, plugins
        return
    try:
        with app.app_context():
            pm = app.extensions["nudge.plugins"]
            yield (lambda templates: instance_vocabulary(get_session(), pm, templates)), True, pm
    finally:
        app.extensions["nudge.queue"].close()
        app.extensions["nudge.db"].dispose()


def _unusable(reason: object) -> None:
    click.echo(f"note: the instance cannot be used ({reason}); checking against the installed plugins only", err=True)


def _plugins() -> Any:
    """The plugins ``NUDGE_PLUGINS`` and ``NUDGE_LOAD_ENTRY_POINTS`` name, without an instance's settings."""
    from ..plugins import PluginError, build_plugin_manager

    settings: dict[str, Any] = {
        "LOAD_ENTRY_POINTS": os.environ.get("NUDGE_LOAD_ENTRY_POINTS", "true").strip().lower()
        not in ("0", "false", "no", "off")
    }
    if os.environ.get("NUDGE_PLUGINS"):
        settings["PLUGINS"] = os.environ["NUDGE_PLUGINS"]
    try:
        return build_plugin_manager(settings)
    except PluginError as exc:
        raise click.ClickException(str(exc)) from None
