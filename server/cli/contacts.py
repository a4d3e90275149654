"""``nudge contacts``: import, export, erase and merge contacts."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import click


def _find(session: Any, ident: str):
    """A contact by id or email, or a ClickException."""
    from sqlalchemy import select

    from ..contacts import InvalidInput, normalize_email
    from ..models import Contact

    if ident.isdecimal():
        contact = session.get(Contact, int(ident)) if int(ident) < 2**31 else None
    else:
        try:
            contact = session.scalar(select(Contact).where(Contact.email == normalize_email(ident, "EMAIL")))
        except InvalidInput as exc:
            raise click.ClickException(str(exc)) from None
    if contact is None:
        raise click.ClickException(f"no contact {ident!r} (give an id or an email address)")
    return contact


def _checked_rows(file: Path, encoding: str) -> int:
    """The rows below the header of *file*, after reading all of it: text in *encoding*, and CSV a strict reader
    takes (a quote never closed would otherwise swallow the rest of the file into one rejected row).

    :raises click.ClickException: saying what is wrong and what to do.
    """
    from ..contacts import InvalidInput
    from ..contacts.import_rows import NotText, text_blocks
    from ..contacts.import_runs import count_rows

    try:
        for _ in text_blocks(file, encoding):  # where a byte does not decode: the text read below cannot say
            pass
        return count_rows(file, encoding)
    except LookupError:
        raise click.BadParameter(
            f"{encoding!r} is no text encoding Python knows; e.g. utf-8, utf-16, latin-1, cp1252",
            param_hint="--encoding",
        ) from None
    except NotText as exc:
        raise click.ClickException(
            f"{file} is not {encoding} text ({exc.reason} at byte {exc.byte}); nothing was imported: pass the "
            "file's encoding, e.g. --encoding latin-1 (or cp1252 for Excel on Windows)"
        ) from None
    except InvalidInput as exc:
        raise click.ClickException(f"{file}: {exc} Nothing was imported.") from None


def register(main: click.Group) -> None:
    @main.group()
    def contacts() -> None:
        """Contacts: CSV import, GDPR export and erasure, merging."""

    @contacts.command("import")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option(
        "--map",
        "maps",
        multiple=True,
        metavar="COLUMN=FIELD",
        help="Map a CSV column to a field (repeatable); COLUMN=- skips it. Unmapped columns match by name.",
    )
    @click.option(
        "--errors",
        "errors_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Write rejected rows (line, column, reason) to this CSV file instead of stderr.",
    )
    @click.option("--region", help="Country for phone numbers without +, e.g. DE.")
    @click.option("--tag", "tags", multiple=True, help="Add this tag to every imported contact (repeatable).")
    @click.option("--encoding", default="utf-8-sig", show_default=True)
    @click.option(
        "--merge",
        type=click.Choice(["update", "fill_empty", "skip"]),
        default="update",
        show_default=True,
        help="How a row naming an existing contact merges: its values win, fill only empty ones, or skip the row.",
    )
    def import_(
        file: Path,
        maps: tuple[str, ...],
        errors_file: Path | None,
        region: str | None,
        tags: tuple[str, ...],
        encoding: str,
        merge: str,
    ) -> None:
        """Import contacts from FILE.csv: validated, deduplicated, merged with existing contacts."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from ..contacts import InvalidInput, address_channels
        from ..contacts.importer import import_csv, parse_mapping
        from ..db import get_session
        from . import build_app

        app = build_app()
        try:
            mapping = parse_mapping(maps)
        except InvalidInput as exc:
            raise click.ClickException(str(exc)) from None
        total = _checked_rows(file, encoding)  # all of the file read before any of it is written
        with app.app_context(), file.open(encoding=encoding, newline="") as fh:
            columns = [TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
            with Progress(*columns, console=_stderr_console(), transient=True) as bar:
                task = bar.add_task("rows", total=total)
                try:
                    report = import_csv(
                        get_session(),
                        fh,
                        secret=app.config["SECRET_KEY"],
                        mapping=mapping,
                        region=region or app.config.get("PHONE_REGION"),
                        tags=tags,
                        progress=lambda n: bar.advance(task, n),
                        channels=address_channels(app.extensions["nudge.plugins"]),
                        merge=merge,
                    )
                except InvalidInput as exc:
                    raise click.ClickException(f"{file}: {exc}") from None
                except UnicodeDecodeError as exc:
                    raise click.ClickException(
                        f"{file} is not {encoding} text ({exc.reason} at byte {exc.start}); "
                        "pass --encoding, e.g. --encoding latin-1"
                    ) from None
        if report.errors:
            if errors_file:
                with errors_file.open("w", newline="") as out:
                    writer = csv.writer(out)
                    writer.writerow(["line", "column", "reason"])
                    writer.writerows((e.line, e.column, e.reason) for e in report.errors)
                click.echo(f"{len(report.errors)} rejected rows written to {errors_file}", err=True)
            else:
                for e in report.errors:
                    click.echo(f"{file}:{e.line}: {e.column or 'row'}: {e.reason}", err=True)
        click.echo(report.summary())

    @contacts.command("export")
    @click.argument("ident", metavar="EMAIL|ID")
    @click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Write the JSON here instead of standard output.",
    )
    def export(ident: str, output: Path | None) -> None:
        """Print everything held on a contact (GDPR/CCPA access request) as JSON."""
        from ..contacts import address_channels, audit, export_contact
        from ..db import get_session
        from . import build_app

        app = build_app()
        with app.app_context():
            session = get_session()
            contact = _find(session, ident)
            data = export_contact(
                session,
                contact,
                secret=app.config["SECRET_KEY"],
                channels=address_channels(app.extensions.get("nudge.plugins")),
            )
            audit(session, "cli", "contact.exported", "contact", contact.id)
            session.commit()
        text = json.dumps(data, indent=2, ensure_ascii=False)
        if output:
            output.write_text(text + "\n")
            click.echo(f"exported contact {data['contact']['id']} to {output}", err=True)
        else:
            click.echo(text)

    @contacts.command("erase")
    @click.argument("ident", metavar="EMAIL|ID")
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
    def erase(ident: str, yes: bool) -> None:
        """Erase a contact and all its personal data (GDPR/CCPA); keeps a salted hash to stay suppressed."""
        from ..contacts import address_channels, erase_contact
        from ..db import get_session
        from . import build_app

        app = build_app()
        with app.app_context():
            session = get_session()
            contact = _find(session, ident)
            contact_id = contact.id
            if not yes:
                click.confirm(f"Erase contact {contact_id} and everything about it? This cannot be undone", abort=True)
            removed = erase_contact(
                session,
                contact,
                secret=app.config["SECRET_KEY"],
                actor="cli",
                channels=address_channels(app.extensions.get("nudge.plugins")),
            )
            session.commit()
        done = ", ".join(f"{n} {table}" for table, n in sorted(removed.items()) if n) or "no other rows"
        click.echo(f"erased contact {contact_id} ({done}); its addresses stay suppressed")

    @contacts.command("merge")
    @click.argument("into", metavar="INTO")
    @click.argument("other", metavar="FROM")
    def merge(into: str, other: str) -> None:
        """Merge contact FROM into INTO (each an id or email); FROM is deleted."""
        from ..contacts import merge_contacts
        from ..db import get_session
        from . import build_app

        app = build_app()
        with app.app_context():
            session = get_session()
            a, b = _find(session, into), _find(session, other)
            if a.id == b.id:
                raise click.ClickException("INTO and FROM are the same contact")
            b_id = b.id
            merge_contacts(session, a, b, actor="cli")
            session.commit()
            click.echo(f"merged contact {b_id} into {a.id}")


def _stderr_console():
    from rich.console import Console

    return Console(file=sys.stderr)
