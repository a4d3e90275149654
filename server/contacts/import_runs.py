"""CSV imports started from the admin UI: the uploaded file checked and kept on disk, then imported by a worker.

The web process only stores the file (under ``$NUDGE_HOME/imports``) and an :class:`ImportRecord`; the import
itself (:func:`server.contacts.importer.import_csv`, the one ``nudge contacts import`` runs) happens in an RQ job,
:func:`run_import`, which writes its progress to the record as each chunk commits, and at the end the rejected
rows to a CSV error report beside the file.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from sqlalchemy import update
from sqlalchemy.orm import Session

from ..db import Trouble, affected_rows, database_trouble, get_session, log_failure
from ..models import ImportRecord, utcnow
from ..queue import get_queue
from .errors import InvalidInput
from .fields import STANDARD_FIELDS
from .import_rows import NotText, csv_rows, text_blocks
from .importer import ImportReport, RowError, import_csv
from .lifecycle import address_channels

log = logging.getLogger(__name__)

#: an import whose worker has reported nothing for this long has stopped (crashed, killed, restarted)
STALL = timedelta(minutes=15)
#: seconds a worker may spend on one import before RQ stops it
JOB_TIMEOUT = 6 * 3600
#: bytes read at a time when checking an upload
_BLOCK = 1024 * 1024
#: statuses in which an import can be started again or thrown away
SETTLED = ("draft", "done", "failed")
#: a header cell that is a value, not a column name: an address, a number, a date
_DATA_LIKE = re.compile(r"^(\S+@\S+\.\S+|[+-]?\d[\d .,/:-]*)$")
#: column names (normalised) that mean a contact attribute under another name
_ALIASES = {"e_mail": "email", "mail": "email", "email_address": "email", "firstname": "first_name",
            "lastname": "last_name", "surname": "last_name", "mobile": "phone", "phone_number": "phone",
            "id": "external_id", "tag": "tags"}  # fmt: skip


def imports_dir(app: Flask | None = None) -> Path:
    """The folder that holds uploaded files and their error reports (made on first use)."""
    folder = Path((app or current_app).config["HOME"]) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def file_of(row: ImportRecord) -> Path:
    return imports_dir() / row.stored_name


def report_of(row: ImportRecord) -> Path:
    return imports_dir() / f"{row.stored_name}.errors.csv"


def check_upload(path: Path, max_bytes: int) -> list[str]:
    """The header of the CSV file at *path*, after checking the whole file is UTF-8 CSV text with rows.

    :raises InvalidInput: (field ``file``) saying what is wrong with the file and what to do.
    """
    size = path.stat().st_size
    if size == 0:
        raise InvalidInput("file", "The file is empty: export the contacts again, with a header line and rows.")
    if size > max_bytes:
        raise InvalidInput(
            "file",
            f"The file has {size} bytes, more than the {max_bytes} an import may have (IMPORT_MAX_BYTES): "
            "split it into smaller files.",
        )
    try:
        for block in text_blocks(path, size=_BLOCK):
            if b"\0" in block:
                raise InvalidInput(
                    "file", "This is not a CSV file (it holds binary data): export the contacts as CSV and upload that."
                )
    except NotText as exc:
        raise InvalidInput(
            "file",
            f"The file is not UTF-8 text (byte {exc.byte} cannot be read): save it as CSV UTF-8 (in Excel: Save As, "
            "then CSV UTF-8) and upload it again.",
        ) from None
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = csv_rows(fh)
        header = next(rows, None)
        if header is None or not any(cell.strip() for cell in header):
            raise InvalidInput("file", "The file has no header line: its first line must name the columns.")
        header = [cell.strip() for cell in header]
        looks_like_data = [cell for cell in header if _DATA_LIKE.match(cell)]
        if looks_like_data:
            raise InvalidInput(
                "file",
                f"The first line holds values ({looks_like_data[0]!r}), not column names: add a header line "
                "naming the columns (e.g. email,first_name) and upload the file again.",
            )
        if "" in header:
            raise InvalidInput("file", f"Column {header.index('') + 1} of the header has no name: name every column.")
        twice = sorted({cell for cell in header if header.count(cell) > 1})
        if twice:
            raise InvalidInput("file", f"The header names column {twice[0]!r} twice: give each column its own name.")
        if next(rows, None) is None:
            raise InvalidInput("file", "The file has a header but no rows: there is nothing to import.")
    return header


def count_rows(path: Path, encoding: str = "utf-8-sig") -> int:
    """The rows below the header, as the importer counts them (blank lines aside)."""
    with path.open(encoding=encoding, newline="") as fh:
        return max(sum(1 for _ in csv_rows(fh)) - 1, 0)


def preview(path: Path, rows: int = 5) -> list[list[str]]:
    """The first *rows* rows below the header."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        found = csv_rows(fh)
        next(found, None)
        return [values for _, values in zip(range(rows), found, strict=False)]


def targets(custom: Iterable[str]) -> list[str]:
    """What a column can map to: the contact's attributes, ``tags``, then the custom fields."""
    return [*STANDARD_FIELDS, "tags", *sorted(custom)]


def guess_mapping(header: list[str], custom: Iterable[str]) -> dict[str, str]:
    """Column → field, guessed from the column names (``-``: no field matches; the column is skipped)."""
    known = targets(custom)
    out: dict[str, str] = {}
    for column in header:
        name = column.strip().lower().replace(" ", "_").replace("-", "_")
        name = _ALIASES.get(name, name)
        out[column] = name if name in known and name not in out.values() else "-"
    return out


def start(session: Session, row: ImportRecord) -> None:
    """Queue *row* for a worker (a new attempt; its counts start again) and commit."""
    row.attempt += 1
    row.status = "queued"
    row.error = ""
    row.rows_done = row.created = row.updated = row.skipped = row.errors = 0
    row.started_at = row.finished_at = None
    row.heartbeat_at = utcnow()
    report_of(row).unlink(missing_ok=True)
    session.commit()
    get_queue().enqueue(
        run_import, row.id, row.attempt, job_id=f"import-{row.id}-{row.attempt}", job_timeout=JOB_TIMEOUT
    )


def stalled(row: ImportRecord) -> bool:
    """Whether *row* waits or runs without its worker having reported for :data:`STALL`: the worker stopped."""
    beat = row.heartbeat_at or row.created_at
    return row.status in ("queued", "running") and beat < utcnow() - STALL


def _set(session: Session, import_id: int, **values: Any) -> None:
    session.execute(update(ImportRecord).where(ImportRecord.id == import_id).values(**values))
    session.commit()


def run_import(import_id: int, attempt: int) -> None:
    """The RQ job: import the file of import *import_id* (if *attempt* is still its latest and it is queued)."""
    session = get_session()
    claimed = affected_rows(
        session.execute(
            update(ImportRecord)
            .where(ImportRecord.id == import_id, ImportRecord.attempt == attempt, ImportRecord.status == "queued")
            .values(status="running", started_at=utcnow(), heartbeat_at=utcnow())
        )
    )
    session.commit()
    if not claimed:
        return
    row = session.get(ImportRecord, import_id)
    assert row is not None
    report = ImportReport()

    def counts() -> dict[str, Any]:
        return {
            "rows_done": report.rows,
            "created": report.created,
            "updated": report.updated,
            "skipped": report.skipped,
            "errors": len(report.errors),
            "heartbeat_at": utcnow(),
        }

    path = file_of(row)
    try:
        _set(session, import_id, rows_total=count_rows(path))
        with path.open(encoding="utf-8-sig", newline="") as fh:
            import_csv(
                session,
                fh,
                secret=current_app.config["SECRET_KEY"],
                mapping=dict(row.mapping),
                region=current_app.config.get("PHONE_REGION"),
                actor=f"{row.created_by} (import {import_id})"[:64],
                progress=lambda _n: _set(session, import_id, **counts()),
                channels=address_channels(current_app.extensions["nudge.plugins"]),
                merge=row.merge,
                report=report,
            )
        write_report(report_of(row), report.errors)
    except Exception as exc:  # any failure is the import's, shown on its page; the worker goes on
        session.rollback()
        trouble = log_failure(log, f"import {import_id} stopped after {report.rows} rows", exc, logging.ERROR)
        try:
            _set(
                session,
                import_id,
                status="failed",
                error=_failure(exc, path, trouble),
                finished_at=utcnow(),
                **counts(),
            )
        except Exception as again:
            if database_trouble(again) is None:
                raise
            session.rollback()  # the record cannot be written either: its page shows it stalled, to be retried
            log.error(
                "import %s could not be marked failed (%s); it shows as stalled after %s", import_id, again, STALL
            )
        return
    _set(session, import_id, status="done", finished_at=utcnow(), **counts())


def _failure(exc: Exception, path: Path, trouble: Trouble | None) -> str:
    """Why an import failed, in words a person can act on (*trouble*: the database's state that stopped it)."""
    if isinstance(exc, InvalidInput):
        return f"{exc} Upload the file again with that fixed."
    if isinstance(exc, FileNotFoundError):
        return f"The uploaded file {path.name} is gone from {path.parent}: discard this import and upload it again."
    if isinstance(exc, UnicodeDecodeError):
        return "The file is not UTF-8 text: save it as CSV UTF-8 and upload it again."
    if trouble is not None:  # the chunks committed before stand whole: the counts say how far it got
        return (
            f"The import stopped: {trouble.detail[0].upper()}{trouble.detail[1:]}. The rows counted above are "
            "imported; Retry the import then (rows already imported are updated, not duplicated)."
        )
    return f"The import stopped: {type(exc).__name__}: {exc}. Retry it; if it fails again, see the worker's log."


#: the error report's columns
REPORT_HEADER = ("row", "column", "error", "what to do")


def safe_cell(value: Any) -> str:
    """A cell a spreadsheet shows as text: one starting ``= + - @`` (or a tab, a carriage return) is a formula
    in Excel and LibreOffice, so it gets a leading ``'``."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def advice(error: RowError) -> str:
    """What to do about a rejected row."""
    if not error.column:
        return "Give the row one value per column (quote values that hold commas), then import the file again."
    if "merge" in error.reason:
        return "Merge the two contacts (Contacts page, or nudge contacts merge), then import the file again."
    return (
        f"Correct the {error.column} value on row {error.line} of the file and import it again "
        "(contacts already imported are updated, not duplicated)."
    )


def write_report(path: Path, errors: list[RowError]) -> None:
    """The rejected rows as CSV (row number, column, error, what to do), written whole or not at all."""
    partial = path.with_suffix(".partial")
    with partial.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(REPORT_HEADER)
        for error in errors:
            writer.writerow([safe_cell(v) for v in (error.line, error.column, error.reason, advice(error))])
    partial.replace(path)


def empty_report() -> bytes:
    """The error report of an import without rejected rows."""
    out = io.StringIO()
    csv.writer(out).writerow(REPORT_HEADER)
    return out.getvalue().encode()


def discard(row: ImportRecord) -> None:
    """Remove an import's file and error report; the record stays, as ``discarded``."""
    file_of(row).unlink(missing_ok=True)
    report_of(row).unlink(missing_ok=True)
    row.status = "discarded"


__all__ = [
    "STALL",
    "check_upload",
    "count_rows",
    "discard",
    "guess_mapping",
    "imports_dir",
    "preview",
    "run_import",
    "start",
    "targets",
]
