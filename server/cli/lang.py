"""``nudge fmt`` and the file helpers ``nudge check`` shares: the rules language on the command line.

Only click and :mod:`dsl` here: formatting needs no app, database or queue.
"""

from __future__ import annotations

from pathlib import Path

import click

import dsl


def register(group: click.Group) -> None:
    """Add ``fmt`` to the ``nudge`` command group (``check`` is in :mod:`server.cli.check`)."""
    group.add_command(fmt_command, "fmt")


def rules_files(paths: tuple[str, ...]) -> list[Path]:
    """The files named, with folders expanded to the ``*.nudge`` files below them."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*.nudge") if p.is_file()))
        else:
            found.append(path)
    return found


def template_names(folder: Path) -> dict[str, frozenset[str]]:
    """``{channel: names}`` from ``folder/<channel>/<name>.<part>``."""
    names: dict[str, frozenset[str]] = {}
    for channel in sorted(p for p in folder.iterdir() if p.is_dir()):
        names[channel.name] = frozenset(
            f.name.split(".", 1)[0] for f in channel.iterdir() if f.is_file() and not f.name.startswith(".")
        )
    return names


def _read(path: Path) -> tuple[str, dsl.ParseResult]:
    data = path.read_bytes()
    return data.decode("utf-8", errors="replace"), dsl.parse_bytes(data, str(path))


def plural(count: int, word: str) -> str:
    """``1 file``, ``2 files``."""
    return f"{count} {word}{'' if count == 1 else 's'}"


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--check", "check_only", is_flag=True, help="Print the files that would change; exit 1 if any would.")
@click.option("--write", is_flag=True, help="Rewrite the files in place.")
def fmt_command(files: tuple[str, ...], check_only: bool, write: bool) -> None:
    """Print rules files in canonical form (or check, or rewrite them)."""
    if check_only and write:
        raise click.UsageError("use either --check or --write, not both")
    failed = changed = False
    for path in rules_files(files):
        source, parsed = _read(path)
        if parsed.program is None:
            for diagnostic in parsed.diagnostics:
                click.echo(diagnostic.format(source), err=True)
            failed = True
            continue
        text = dsl.format_program(parsed.program)
        if check_only:
            if text != source:
                click.echo(str(path))
                changed = True
        elif write:
            if text != source:
                path.write_text(text, encoding="utf-8")
                click.echo(f"reformatted {path}", err=True)
        else:
            click.echo(text, nl=False)
    if failed or changed:
        raise SystemExit(1)
