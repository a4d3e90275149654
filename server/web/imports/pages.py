"""The imports list with the upload form, an import's mapping form (with a preview), its live progress, and its
error report; start, retry and discard."""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, current_app, jsonify, redirect, render_template, request, send_file, url_for
from sqlalchemy import select

from ...contacts import Conflict, InvalidInput, audit, define_field, definitions
from ...contacts.import_runs import (
    SETTLED,
    check_upload,
    discard,
    empty_report,
    file_of,
    guess_mapping,
    imports_dir,
    preview,
    report_of,
    stalled,
    start,
    targets,
)
from ...contacts.importer import MERGES, resolve_columns
from ...db import get_session
from ...models import FieldType, ImportRecord, Role
from ..access import actor, may, requires
from ..flash import notify
from ..security import larger_body
from . import bp

MAX_ID = 2**31 - 1
#: what an upload's body may hold beyond the file itself (the multipart framing, the CSRF token)
FRAMING = 64 * 1024
#: how each merge mode reads on the page
MERGE_LABELS = {
    "update": "Update: the file's values replace the contact's",
    "fill_empty": "Fill empty only: the file's values fill the contact's empty fields",
    "skip": "Skip: existing contacts are left as they are",
}
assert set(MERGE_LABELS) == set(MERGES)
#: a column's choice that makes a custom field for it when the import starts (no field name has a "+")
NEW_FIELD = "+new"
#: the custom fields' types as the page names them (the values those of the API's ``/fields``)
TYPE_LABELS = {
    "string": "text",
    "number": "number",
    "bool": "yes or no",
    "date": "date",
    "datetime": "date and time",
    "list": "list (values separated by ;)",
}
assert set(TYPE_LABELS) == {t.value for t in FieldType}


#: the most one request of an upload carries: the page sends a larger file in pieces of :data:`PIECE` bytes, so
#: that the WSGI server's body limit stays that of the API (8 MiB) and a file may be as large as IMPORT_MAX_BYTES
PIECE = 4 * 1024 * 1024
ONE_REQUEST = 8 * 1024 * 1024
#: an upload in pieces is named by this token (its file is ``.<token>.upload`` until it is checked)
TOKEN = re.compile(r"[0-9a-f]{24}")
#: pieces of an upload never finished are deleted after this long
ABANDONED = 24 * 3600


def _one_request(_app: Flask) -> int:
    return ONE_REQUEST + FRAMING


def _part(token: str) -> Path:
    return imports_dir() / f".{token}.upload"


def _list(errors: dict[str, str] | None = None, status: int = 200) -> Any:
    rows = list(get_session().scalars(select(ImportRecord).order_by(ImportRecord.id.desc()).limit(200)))
    return (
        render_template(
            "admin/imports/list.html",
            imports=rows,
            stalled={row.id for row in rows if stalled(row)},
            can_edit=may(Role.EDITOR),
            errors=errors or {},
            max_mib=current_app.config["IMPORT_MAX_BYTES"] // (1024 * 1024),
            piece_bytes=PIECE,
        ),
        status,
    )


@bp.get("/")
@requires(Role.VIEWER)
def index():
    return _list()


@bp.post("/pieces")
@larger_body(_one_request, "A piece of an upload is at most {limit} MiB.")
@requires(Role.EDITOR)
def piece():
    """Append one piece (the body) of a file the page uploads in pieces, at ``?offset=``; the first piece starts a
    new upload, the others name it (``?upload=``). Answers the upload's token and its size so far (JSON)."""
    token, offset = request.args.get("upload", ""), request.args.get("offset", "")
    if not offset.isdecimal():
        return _piece_refused(400, "Give the piece's offset in the file (?offset=).")
    if not token:
        _sweep()
        token = secrets.token_hex(12)
        _part(token).touch()
    elif not TOKEN.fullmatch(token) or not _part(token).exists():
        return _piece_refused(404, "That upload is unknown or expired: choose the file again.")
    path = _part(token)
    size = path.stat().st_size
    if int(offset) != size:
        return _piece_refused(409, f"The upload has {size} bytes; the next piece starts there, not at {offset}.")
    data = request.get_data(cache=False)
    limit = current_app.config["IMPORT_MAX_BYTES"]
    if size + len(data) > limit:
        path.unlink(missing_ok=True)
        return _piece_refused(
            413, f"The file is larger than the {limit} bytes an import may have (IMPORT_MAX_BYTES): split it."
        )
    with path.open("ab") as fh:
        fh.write(data)
    return jsonify(upload=token, size=size + len(data))


def _piece_refused(status: int, text: str) -> Response:
    return Response(text, status, mimetype="text/plain")


def _sweep() -> None:
    """Delete the pieces of uploads left unfinished for a day."""
    old = time.time() - ABANDONED
    for path in imports_dir().glob(".*.upload"):
        if path.stat().st_mtime < old:
            path.unlink(missing_ok=True)


@bp.post("/")
@larger_body(
    _one_request, "The upload is larger than {limit} MiB: upload it from the Imports page, which sends it in pieces."
)
@requires(Role.EDITOR)
def upload():
    """Check an uploaded file (sent whole, or in pieces by the page) and make a draft import of it under the data
    folder; a bad file leaves nothing behind."""
    token = request.form.get("upload", "")
    if token:
        if not TOKEN.fullmatch(token) or not _part(token).exists():
            return _refused("That upload is unknown or expired: choose the file again.")
        name = request.form.get("file_name", "")
    else:
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            return _refused("Choose a CSV file to upload.")
        name, token = upload.filename, secrets.token_hex(12)
        upload.save(_part(token))
    name = name.replace("\\", "/").rsplit("/", 1)[-1][:255] or "upload.csv"
    part = _part(token)
    stored = f"{token}.csv"
    try:
        if not name.lower().endswith((".csv", ".txt")):
            raise InvalidInput(
                "file", "This is not a CSV file (its name should end in .csv): export the contacts as CSV."
            )
        header = check_upload(part, current_app.config["IMPORT_MAX_BYTES"])
    except InvalidInput as exc:
        part.unlink(missing_ok=True)
        return _refused(f"{name}: {exc.message}")
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    session = get_session()
    row = ImportRecord(
        file_name=name,
        stored_name=stored,
        size_bytes=part.stat().st_size,
        header=header,
        mapping=guess_mapping(header, definitions(session)),
        created_by=actor(),
    )
    session.add(row)
    session.flush()
    audit(session, actor(), "import.uploaded", "import", row.id, bytes=row.size_bytes, columns=len(header))
    part.replace(imports_dir() / stored)
    session.commit()
    notify(f"{name} is uploaded: map its columns, then start the import.")
    return redirect(url_for("imports.show", import_id=row.id))


def _refused(text: str) -> Any:
    notify("The file was not uploaded: " + text, "error")
    return _list({"file": text}, 422)


def _import(import_id: int) -> ImportRecord:
    row = get_session().get(ImportRecord, import_id) if 0 < import_id <= MAX_ID else None
    if row is None:
        abort(404, description=f"There is no import {import_id}.")
    return row


def field_name(column: str) -> str:
    """The name a new custom field for *column* is offered: its header in lowercase letters, digits and ``_``."""
    name = re.sub(r"[^a-z0-9]+", "_", column.strip().lower()).strip("_")
    if name and not name[0].isalpha():
        name = "f_" + name
    return name[:64].rstrip("_")


def _page(
    row: ImportRecord,
    errors: dict[str, str] | None = None,
    status: int = 200,
    chosen: tuple[dict[str, str], str, dict[str, tuple[str, str]]] | None = None,
) -> Any:
    """An import's page; *chosen* (mapping, merge mode, new fields by column) shows a refused start's choices
    again."""
    session = get_session()
    draft = row.status == "draft"
    offered = {column: (field_name(column), FieldType.STRING.value) for column in row.header} if draft else {}
    return (
        render_template(
            "admin/imports/show.html",
            row=row,
            view=_view(row),
            can_edit=may(Role.EDITOR),
            targets=targets(definitions(session)) if draft else [],
            preview=preview(file_of(row)) if draft else [],
            merges=MERGE_LABELS,
            errors=errors or {},
            mapping=chosen[0] if chosen else row.mapping,
            merge=chosen[1] if chosen else row.merge,
            new_field=NEW_FIELD,
            new_fields={**offered, **(chosen[2] if chosen else {})},
            types=TYPE_LABELS,
        ),
        status,
    )


def _view(row: ImportRecord) -> dict[str, Any]:
    """What the page shows of *row*'s state: its status (a stopped worker's import shows as failed) and progress."""
    status, error = row.status, row.error
    if stalled(row):
        status = "failed"
        error = (
            "The worker stopped reporting (it crashed or was restarted) before the import ended. "
            "Retry it: contacts already imported are updated, not duplicated."
        )
    total = row.rows_total
    done = total if status == "done" else min(row.rows_done, total)
    percent = 100 if status == "done" else (done * 100 // total if total else 0)
    return {
        "status": status,
        "error": error,
        "done": done,
        "percent": percent,
        "polling": status in ("queued", "running"),
    }


@bp.get("/<int:import_id>")
@requires(Role.VIEWER)
def show(import_id: int):
    return _page(_import(import_id))


@bp.get("/<int:import_id>/progress")
@requires(Role.VIEWER)
def progress(import_id: int):
    """The progress bar and counts (htmx polls it while the import waits or runs)."""
    row = _import(import_id)
    view = _view(row)
    response = Response(render_template("admin/imports/_progress.html", row=row, view=view))
    if not view["polling"]:
        response.headers["HX-Refresh"] = "true"  # it ended: the whole page shows the report, retry or discard
    return response


@bp.post("/<int:import_id>/start")
@requires(Role.EDITOR)
def begin(import_id: int):
    """Check the mapping and merge mode, store them and queue the import for a worker."""
    session = get_session()
    row = _import(import_id)
    if row.status != "draft":
        abort(409, description=f"Import {row.id} has started already ({row.status}).")
    custom = definitions(session)
    known = targets(custom)
    chosen = {column: request.form.get(f"map-{i}", "-") for i, column in enumerate(row.header)}
    # a column mapped to a new custom field: its name and type as typed (the field is made once all is well)
    new = {
        column: (request.form.get(f"new-name-{i}", "").strip(), request.form.get(f"new-type-{i}", ""))
        for i, column in enumerate(row.header)
        if chosen[column] == NEW_FIELD
    }
    mapping = {column: new[column][0] if column in new else target for column, target in chosen.items()}
    merge = request.form.get("merge", "")
    errors: dict[str, str] = {}
    for i, (column, target) in enumerate(mapping.items()):
        if column in new and not target:
            errors[f"map-{i}"] = f"Name the new field for {column} (lowercase letters, digits and _)."
        elif column not in new and target != "-" and target not in known:
            errors[f"map-{i}"] = f"Choose a field for {column} from the list, or skip it."
    taken: dict[str, str] = {}
    for i, (column, target) in enumerate(mapping.items()):
        if column in new and target in known:
            continue  # a new field named as one that exists: defining it says so (below)
        if target not in ("-", "") and target in taken:
            errors[f"map-{i}"] = f"{taken[target]} and {column} both map to {target}: skip one or choose another field."
        taken.setdefault(target, column)
    if not {"email", "external_id"} & set(mapping.values()):
        errors["mapping"] = "Map a column to email or external_id: rows are matched to contacts by them."
    if merge not in MERGES:
        errors["merge"] = "Choose how rows naming existing contacts merge."
    made = _make_fields(row.header, new, errors)
    if not errors:
        try:
            resolve_columns(list(row.header), mapping, {**custom, **made})  # what the worker will check again
        except InvalidInput as exc:
            errors["mapping"] = exc.message
    if errors:
        session.rollback()  # all or nothing: no new field stays when the import does not start
        notify("The import was not started: " + " ".join(errors.values()), "error")
        return _page(row, errors, 422, chosen=(chosen, merge, new))
    for name, kind in made.items():
        audit(session, actor(), "field.created", "field", name, type=kind)
    row.mapping, row.merge = mapping, merge
    mapped = sum(t != "-" for t in mapping.values())
    if made:
        notify(f"New custom field(s) for the import: {', '.join(made)}.")
    return _queue(
        row,
        "import.started",
        "is queued; a worker imports it while you watch here",
        merge=merge,
        mapped=mapped,
        **({"fields_created": sorted(made)} if made else {}),
    )


def _make_fields(header: list[str], new: dict[str, tuple[str, str]], errors: dict[str, str]) -> dict[str, str]:
    """Define the custom fields of *new* (column → name, type) in the session, as the API's ``POST /fields`` does
    (same checks); a refused one is added to *errors* under its column. The caller commits or rolls back.

    :return: the fields defined, name → type
    """
    session = get_session()
    made: dict[str, str] = {}
    for i, column in enumerate(header):
        if column not in new or f"map-{i}" in errors:
            continue
        name, kind = new[column]
        try:
            made[define_field(session, name, kind).name] = kind
        except Conflict as exc:
            errors[f"map-{i}"] = f"No new field for {column}: {exc.message}; choose it in the list instead."
        except InvalidInput as exc:
            errors[f"map-{i}"] = f"No new field for {column}: {exc.message}."
    return made


def _queue(row: ImportRecord, action: str, done: str, **detail: Any) -> Any:
    """Audit *action*, queue *row* for a worker, say so and show it."""
    session = get_session()
    audit(session, actor(), action, "import", row.id, **detail)
    start(session, row)
    notify(f"The import of {row.file_name} {done}.")
    return redirect(url_for("imports.show", import_id=row.id))


@bp.post("/<int:import_id>/retry")
@requires(Role.EDITOR)
def retry(import_id: int):
    row = _import(import_id)
    if _view(row)["status"] != "failed":
        abort(409, description=f"Only a failed import can be retried; import {row.id} is {row.status}.")
    return _queue(row, "import.retried", "is queued again", attempt=row.attempt + 1)


@bp.post("/<int:import_id>/discard")
@requires(Role.EDITOR)
def throw_away(import_id: int):
    session = get_session()
    row = _import(import_id)
    if row.status not in SETTLED and not stalled(row):
        abort(409, description=f"Import {row.id} is {row.status}: wait until it ends (or fails) to discard it.")
    discard(row)
    audit(session, actor(), "import.discarded", "import", row.id)
    session.commit()
    notify(f"The import of {row.file_name} is discarded: its file is deleted.")
    return redirect(url_for("imports.index"))


@bp.get("/<int:import_id>/errors.csv")
@requires(Role.VIEWER)
def error_report(import_id: int):
    """The rejected rows (row, column, error, what to do) as a CSV attachment."""
    row = _import(import_id)
    name = f"import-{row.id}-errors.csv"
    path = report_of(row)
    if row.status != "done" or not path.exists():
        if row.status == "done" and not row.errors:
            return Response(
                empty_report(), mimetype="text/csv", headers={"Content-Disposition": f"attachment; filename={name}"}
            )
        abort(404, description=f"Import {row.id} has no error report ({row.status}).")
    return send_file(path, mimetype="text/csv", as_attachment=True, download_name=name, max_age=0)
