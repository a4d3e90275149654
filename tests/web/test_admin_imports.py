"""The Imports area through the test client: upload (bad files refused with nothing left behind), the mapping form
guessed from the header with an escaped preview, mapping validation, the import run by a real RQ worker with its
progress in the database, the error report's bytes, failed and stopped imports retried or discarded — roles, CSRF,
audit rows."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from server.contacts import define_field
from server.db import get_session
from server.models import Contact, FieldDefinition, ImportRecord

from ..helpers import run_worker, signed_in
from .crm_helpers import BREAKOUT, SCRIPT, audited, escaped, page_flash, post

#: small enough for the too-large cases; the files below are smaller
MAX_BYTES = 4096

GOOD_AND_BAD = (
    "E-Mail,First Name,@score,Plan\n"
    "ana@example.com,Ana,3,pro\n"
    "not-an-address,Bo,1,free\n"
    "cy@example.com,Cy,lots,free\n"
    "dee@example.com,Dee\n"
    f"eve@example.com,{SCRIPT},2,team\n"
)


@pytest.fixture
def config(config):
    return {**config, "IMPORT_MAX_BYTES": MAX_BYTES}


@pytest.fixture
def plan(app):
    with app.app_context():
        define_field(get_session(), "plan", "string")
        get_session().commit()


def _upload(client, body: bytes | str, name: str = "people.csv", csrf: bool = True):
    data = {"file": (io.BytesIO(body.encode() if isinstance(body, str) else body), name)}
    if csrf:
        data["csrf_token"] = client.csrf
    return client.post("/admin/imports/", data=data, content_type="multipart/form-data")


def _uploaded(client, body: str = GOOD_AND_BAD) -> int:
    response = _upload(client, body)
    assert response.status_code == 302, response.get_data(as_text=True)
    return int(response.headers["Location"].rsplit("/", 1)[1])


def _start(client, import_id: int, merge: str = "update", **maps):
    form = {"merge": merge, "map-0": "email", "map-1": "first_name", "map-2": "score", "map-3": "plan", **maps}
    return post(client, f"/admin/imports/{import_id}/start", **form)


def _row(app, import_id: int) -> ImportRecord:
    with app.app_context():
        row = get_session().get(ImportRecord, import_id)
        get_session().expunge_all()
        return row


def _files(app) -> list[str]:
    folder = Path(app.config["HOME"]) / "imports"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _imports(app) -> int:
    with app.app_context():
        return len(list(get_session().scalars(select(ImportRecord))))


def _progress(client, import_id: int):
    return client.get(f"/admin/imports/{import_id}/progress", headers={"HX-Request": "true"})


def _counts(text: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r'<span id="count-(\w+)">(\d+)</span>', text)}


def test_viewers_read_imports_but_cannot_upload_start_retry_or_discard(app, plan):
    import_id = _uploaded(signed_in(app, "editor"))
    viewer = signed_in(app, "viewer")
    listed = viewer.get("/admin/imports/").get_data(as_text=True)
    assert "people.csv" in listed and 'id="upload-form"' not in listed
    page = viewer.get(f"/admin/imports/{import_id}").get_data(as_text=True)
    assert 'id="import-preview"' in page and 'id="mapping-form"' not in page and "Discard" not in page
    assert _upload(viewer, GOOD_AND_BAD).status_code == 403
    for action in ("start", "retry", "discard"):
        assert post(viewer, f"/admin/imports/{import_id}/{action}", merge="update").status_code == 403
    assert _row(app, import_id).status == "draft" and _imports(app) == 1
    admin = signed_in(app, "admin")
    assert 'id="upload-form"' in admin.get("/admin/imports/").get_data(as_text=True)
    assert _start(admin, import_id).status_code == 302


def test_every_change_needs_the_csrf_token(app, plan):
    editor = signed_in(app, "editor")
    assert _upload(editor, GOOD_AND_BAD, csrf=False).status_code == 400
    assert _imports(app) == 0 and _files(app) == []
    import_id = _uploaded(editor)
    for action in ("start", "discard"):
        assert post(editor, f"/admin/imports/{import_id}/{action}", csrf=False, merge="update").status_code == 400
    assert _row(app, import_id).status == "draft"


@pytest.mark.parametrize(
    ("body", "name", "says"),
    [
        (b"", "people.csv", "The file is empty"),
        (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "people.csv", "This is not a CSV file (it holds binary data)"),
        (
            b"email,first_name\nzoe@example.com,Zo\xeb\n",
            "people.csv",
            "The file is not UTF-8 text (byte 36 cannot be read)",
        ),
        (b"ana@example.com,Ana\nbo@example.com,Bo\n", "people.csv", "The first line holds values ('ana@example.com')"),
        (b"\n\n", "people.csv", "The file has no header line"),
        (b"email,first_name\n", "people.csv", "The file has a header but no rows"),
        (b"email,email\na@example.com,b@example.com\n", "people.csv", "The header names column 'email' twice"),
        (b'email,name\n"a@example.com,Ana\n', "people.csv", "This is not a valid CSV file"),
        (b"email\n" + b"a@example.com\n" * 400, "people.csv", "more than the 4096 an import may have"),
        (b"email\na@example.com\n", "people.xlsx", "people.xlsx: This is not a CSV file (its name should end in .csv)"),
    ],
)
def test_a_bad_file_gets_a_clear_error_and_leaves_nothing_behind(app, body, name, says):
    editor = signed_in(app, "editor")
    response = _upload(editor, body, name)
    text = response.get_data(as_text=True)
    assert response.status_code == 422, text
    assert says in html.unescape(page_flash(text)) and 'class="field-error" id="f-file-error"' in text
    assert _imports(app) == 0 and _files(app) == []
    assert audited(app, "import.uploaded") == []


def test_a_body_past_the_limit_is_refused_before_it_is_read(app):
    editor = signed_in(app, "editor")
    part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n\r\n'
    body = part + b"email\n" + b"a@example.com\n" * 700_000 + b"\r\n--b--\r\n"  # 9 MiB in one request
    response = editor.post("/admin/imports/", data=body, content_type="multipart/form-data; boundary=b")
    assert response.status_code == 413
    assert "The upload is larger than 8 MiB: upload it from the Imports page" in response.get_data(as_text=True)
    assert _imports(app) == 0 and _files(app) == []


def _piece(client, data: bytes, offset: int, upload: str = "", csrf: bool = True):
    headers = {"Content-Type": "application/octet-stream", **({"X-CSRF-Token": client.csrf} if csrf else {})}
    return client.post(f"/admin/imports/pieces?upload={upload}&offset={offset}", data=data, headers=headers)


def test_the_page_uploads_a_file_in_pieces_then_checks_it_whole(app, plan):
    editor = signed_in(app, "editor")
    body = GOOD_AND_BAD.encode()
    first = _piece(editor, body[:50], 0)
    assert first.status_code == 200, first.get_data(as_text=True)
    token = first.json["upload"]
    assert first.json == {"upload": token, "size": 50} and re.fullmatch(r"[0-9a-f]{24}", token)
    again = _piece(editor, body[:50], 0, token)  # a piece sent twice is refused: the upload says where it stands
    assert again.status_code == 409 and "has 50 bytes; the next piece starts there" in again.get_data(as_text=True)
    assert _piece(editor, body[50:100], 50, token).json["size"] == 100
    assert _piece(editor, body[100:], 100, token).json["size"] == len(body)
    assert _piece(editor, b"x", 0, "0" * 24).status_code == 404
    assert _piece(editor, b"x", "%C2%B2", token).status_code == 400  # ² is a digit to str.isdigit, not to int()
    response = post(editor, "/admin/imports/", upload=token, file_name="C:\\exports\\people.csv")
    assert response.status_code == 302, response.get_data(as_text=True)
    row = _row(app, int(response.headers["Location"].rsplit("/", 1)[1]))
    assert (row.file_name, row.size_bytes) == ("people.csv", len(body))
    assert _files(app) == [row.stored_name] and row.stored_name == f"{token}.csv"
    assert (Path(app.config["HOME"]) / "imports" / row.stored_name).read_bytes() == body
    refused = post(editor, "/admin/imports/", upload=token, file_name="people.csv")  # used up
    assert refused.status_code == 422 and "unknown or expired" in refused.get_data(as_text=True)


def test_pieces_past_the_limit_are_refused_and_deleted(app):
    editor = signed_in(app, "editor")
    token = _piece(editor, b"email\n" + b"a@example.com\n" * 200, 0).json["upload"]
    refused = _piece(editor, b"a@example.com\n" * 200, 2806, token)
    assert refused.status_code == 413
    assert "larger than the 4096 bytes an import may have (IMPORT_MAX_BYTES)" in refused.get_data(as_text=True)
    assert _files(app) == [] and _imports(app) == 0


def test_pieces_need_an_editor_and_the_csrf_token(app):
    viewer, editor = signed_in(app, "viewer"), signed_in(app, "editor")
    assert _piece(viewer, b"email\n", 0).status_code == 403
    assert _piece(editor, b"email\n", 0, csrf=False).status_code == 400
    assert _files(app) == []


def test_the_mapping_is_guessed_from_the_header_and_the_preview_is_escaped(app, plan):
    editor = signed_in(app, "editor")
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(
        [["E-Mail", "First Name", BREAKOUT, "Plan"], ["ana@example.com", SCRIPT, "x", "pro"]]
    )
    body = out.getvalue()
    import_id = _uploaded(editor, body)
    page = editor.get(f"/admin/imports/{import_id}").get_data(as_text=True)
    escaped(page, SCRIPT, BREAKOUT)
    selects = re.findall(r'<select id="f-(map-\d)" name="map-\d">(.*?)</select>', page, re.S)
    selected = {name: re.findall(r'<option value="([^"]+)" selected', options) for name, options in selects}
    # the hostile column matches no field: skipped unless mapped
    assert selected == {"map-0": ["email"], "map-1": ["first_name"], "map-2": [], "map-3": ["plan"]}
    assert re.search(r'value="update" checked', page)
    assert [a.detail for a in audited(app, "import.uploaded")] == [{"bytes": len(body), "columns": 4}]
    row = _row(app, import_id)
    assert (row.file_name, row.status, row.header[0]) == ("people.csv", "draft", "E-Mail")
    assert (Path(app.config["HOME"]) / "imports" / row.stored_name).read_text() == body


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"map-1": "email"}, "E-Mail and First Name both map to email"),
        ({"map-0": "-"}, "Map a column to email or external_id"),
        ({"map-2": "salary"}, "Choose a field for @score from the list"),
        ({"merge": "newest"}, "Choose how rows naming existing contacts merge"),
    ],
)
def test_a_bad_mapping_is_refused_and_nothing_is_queued(app, plan, change, says):
    editor = signed_in(app, "editor")
    import_id = _uploaded(editor)
    response = _start(editor, import_id, **change)
    text = response.get_data(as_text=True)
    assert response.status_code == 422 and says in html.unescape(page_flash(text))
    row = _row(app, import_id)
    assert (row.status, row.attempt) == ("draft", 0)
    run_worker(app)  # nothing was queued
    assert _row(app, import_id).status == "draft" and audited(app, "import.started") == []


def test_a_worker_imports_the_file_and_the_error_report_downloads(app, plan):
    editor = signed_in(app, "editor")
    import_id = _uploaded(editor)
    response = _start(editor, import_id, merge="fill_empty")
    assert response.status_code == 302
    assert "is queued" in page_flash(editor.get(f"/admin/imports/{import_id}").get_data(as_text=True))
    waiting = _progress(editor, import_id)
    assert 'hx-trigger="every 2s"' in waiting.get_data(as_text=True) and "HX-Refresh" not in waiting.headers
    with app.app_context():  # the web process only queued it: the worker imports
        assert get_session().scalars(select(Contact)).first() is None
    assert _row(app, import_id).status == "queued"
    run_worker(app)
    row = _row(app, import_id)
    assert (row.status, row.rows_total, row.rows_done, row.created, row.errors) == ("done", 5, 5, 2, 3)
    assert (row.merge, row.mapping["@score"]) == ("fill_empty", "score")
    ended = _progress(editor, import_id)
    text = ended.get_data(as_text=True)
    assert ended.headers["HX-Refresh"] == "true" and "every 2s" not in text
    assert '<strong id="import-percent">100%</strong>' in text
    assert _counts(text) == {"done": 5, "total": 5, "created": 2, "updated": 0, "skipped": 0, "errors": 3}
    download = editor.get(f"/admin/imports/{import_id}/errors.csv")
    assert download.status_code == 200 and download.mimetype == "text/csv"
    assert download.headers["Content-Disposition"] == f"attachment; filename=import-{import_id}-errors.csv"
    again = b'import it again (contacts already imported are updated, not duplicated)."\r\n'
    assert download.data == (
        b"row,column,error,what to do\r\n"
        b"3,E-Mail,email 'not-an-address' is not a valid address: An email address must have an @-sign.,"
        b'"Correct the E-Mail value on row 3 of the file and ' + again + b"4,'@score,score 'lots' is not an integer,"
        b'"Correct the @score value on row 4 of the file and ' + again + b"5,,has 2 values for 4 columns,"
        b'"Give the row one value per column (quote values that hold commas), then import the file again."\r\n'
    )
    download.close()
    with app.app_context():
        people = {c.email: c for c in get_session().scalars(select(Contact))}
    assert sorted(people) == ["ana@example.com", "eve@example.com"]
    assert (people["ana@example.com"].score, people["ana@example.com"].fields) == (3, {"plan": "pro"})
    assert people["eve@example.com"].first_name == SCRIPT
    escaped(editor.get(f"/admin/imports/{import_id}").get_data(as_text=True))
    started = audited(app, "import.started")
    assert [a.detail for a in started] == [{"merge": "fill_empty", "mapped": 4}]
    assert [a.detail["created"] for a in audited(app, "contacts.imported")] == [2]
    assert f"(import {import_id})" in audited(app, "contacts.imported")[0].actor


def test_a_failed_import_shows_its_error_and_can_be_retried_then_discarded(app, plan):
    editor = signed_in(app, "editor")
    import_id = _uploaded(editor)
    assert _start(editor, import_id).status_code == 302
    with app.app_context():  # the custom field goes away before the worker runs
        session = get_session()
        session.delete(session.scalar(select(FieldDefinition).where(FieldDefinition.name == "plan")))
        session.commit()
    run_worker(app)
    row = _row(app, import_id)
    assert row.status == "failed" and "column 'Plan' matches no contact field" in row.error
    page = editor.get(f"/admin/imports/{import_id}").get_data(as_text=True)
    assert 'id="import-error"' in page and "matches no contact field" in page and ">Retry</button>" in page
    assert editor.get(f"/admin/imports/{import_id}/errors.csv").status_code == 404
    with app.app_context():
        define_field(get_session(), "plan", "string")
        get_session().commit()
    assert post(editor, f"/admin/imports/{import_id}/retry").status_code == 302
    assert post(editor, f"/admin/imports/{import_id}/retry").status_code == 409  # queued: nothing to retry
    run_worker(app)
    row = _row(app, import_id)
    assert (row.status, row.attempt, row.created, row.error) == ("done", 2, 2, "")
    assert len(audited(app, "import.retried")) == 1
    assert post(editor, f"/admin/imports/{import_id}/discard").status_code == 302
    assert _row(app, import_id).status == "discarded" and _files(app) == []
    assert len(audited(app, "import.discarded")) == 1


def test_an_import_whose_worker_stopped_shows_as_failed_and_can_be_retried(app, plan, clock):
    editor = signed_in(app, "editor")
    import_id = _uploaded(editor)
    assert _start(editor, import_id).status_code == 302
    assert post(editor, f"/admin/imports/{import_id}/discard").status_code == 409  # it may still run
    clock.advance(timedelta(minutes=16))  # no worker took it: nothing reported for longer than STALL
    page = editor.get(f"/admin/imports/{import_id}").get_data(as_text=True)
    assert "The worker stopped reporting" in page and ">Retry</button>" in page
    assert post(editor, f"/admin/imports/{import_id}/retry").status_code == 302
    run_worker(app)  # the first attempt's job does nothing; the second imports
    row = _row(app, import_id)
    assert (row.status, row.attempt, row.created) == ("done", 2, 2)


def test_unknown_imports_are_404(app):
    viewer = signed_in(app, "viewer")
    for url in ("/admin/imports/999", "/admin/imports/0/progress", "/admin/imports/99999999999/errors.csv"):
        assert viewer.get(url).status_code == 404


def test_an_import_names_who_uploaded_it_by_their_email(app, plan):
    """The list and the import's page say who uploaded it as people know them, not the log's ``user:<id>``."""
    editor = signed_in(app, "editor")
    import_id = _uploaded(editor)
    shown = editor.get(f"/admin/imports/{import_id}").get_data(as_text=True)
    assert f"by {editor.email}</dd>" in shown and "user:" not in shown
    listing = editor.get("/admin/imports/").get_data(as_text=True)
    assert f"<td>{editor.email}</td>" in listing and "user:" not in listing


def _fields(app) -> dict[str, str]:
    with app.app_context():
        return dict(get_session().execute(select(FieldDefinition.name, FieldDefinition.type)).all())


def test_a_column_mapped_to_a_new_custom_field_makes_it_when_the_import_starts(app, plan):
    editor = signed_in(app, "editor")
    import_id = _uploaded(editor)
    page = editor.get(f"/admin/imports/{import_id}").get_data(as_text=True)
    # every column offers a new field, named after its header and of type text unless changed
    assert page.count('<option value="+new">New custom field…</option>') == 4
    assert 'name="new-name-1" type="text" maxlength="64" value="first_name"' in page
    assert 'name="new-name-2" type="text" maxlength="64" value="score"' in page
    assert re.search(r'name="new-type-3">\s*<option value="string" selected>text</option>', page)
    response = _start(editor, import_id, **{"map-3": "+new", "new-name-3": "tier", "new-type-3": "string"})
    assert response.status_code == 302, page_flash(response.get_data(as_text=True))
    assert _fields(app) == {"plan": "string", "tier": "string"}
    assert "New custom field(s) for the import: tier." in page_flash(editor.get(f"/admin/imports/{import_id}").text)
    run_worker(app)
    row = _row(app, import_id)
    assert (row.status, row.mapping["Plan"]) == ("done", "tier")
    with app.app_context():
        people = {c.email: c.fields for c in get_session().scalars(select(Contact))}
    assert people == {"ana@example.com": {"tier": "pro"}, "eve@example.com": {"tier": "team"}}
    assert [(a.target_id, a.detail) for a in audited(app, "field.created")] == [("tier", {"type": "string"})]
    assert [a.detail for a in audited(app, "import.started")] == [
        {"merge": "update", "mapped": 4, "fields_created": ["tier"]}
    ]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        # refused for another reason: the valid new field is not made either
        ({"map-0": "-"}, "Map a column to email or external_id"),
        ({"merge": "newest"}, "Choose how rows naming existing contacts merge"),
        ({"new-name-3": "Tier!"}, "No new field for Plan: name must be lowercase letters, digits and _"),
        ({"new-name-3": ""}, "Name the new field for Plan"),
        ({"new-name-3": "email"}, "No new field for Plan: 'email' is a built-in contact attribute"),
        ({"new-name-3": "plan"}, "No new field for Plan: a custom field named 'plan' already exists; choose it in"),
        ({"new-type-3": "colour"}, "No new field for Plan: type must be one of string, number"),
        ({"map-1": "+new", "new-name-1": "tier", "new-type-1": "string"}, "First Name and Plan both map to tier"),
    ],
)
def test_a_refused_start_makes_no_new_field_and_keeps_what_was_typed(app, plan, change, says):
    editor = signed_in(app, "editor")
    import_id = _uploaded(editor)
    form = {"map-2": "+new", "new-name-2": "points", "new-type-2": "number"}
    form |= {"map-3": "+new", "new-name-3": "tier", "new-type-3": "string", **change}
    response = _start(editor, import_id, **form)
    text = response.get_data(as_text=True)
    assert response.status_code == 422 and says in html.unescape(page_flash(text)), page_flash(text)
    assert _fields(app) == {"plan": "string"} and audited(app, "field.created") == []
    assert _row(app, import_id).status == "draft"
    assert '<option value="+new" selected>' in text and 'value="points"' in text  # the choices are kept
    assert re.search(r'name="new-type-2">.*?<option value="number" selected>', text, re.S)


def test_a_new_fields_name_is_offered_from_the_column_header():
    from server.web.imports.pages import field_name

    assert field_name("Favourite Colour") == "favourite_colour"
    assert field_name("  E-Mail (work) ") == "e_mail_work"
    assert field_name("2nd phone") == "f_2nd_phone"
    assert field_name("@score") == "score"
    assert field_name("Ünïcode") == "n_code"
    assert field_name("x" * 70) == "x" * 64
    assert field_name("!!!") == ""
