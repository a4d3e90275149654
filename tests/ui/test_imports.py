"""Imports in a real browser: an editor uploads a CSV with good and bad rows, maps its columns (guessed, one changed
by hand), starts the import, watches the progress reach 100% while a real worker imports it (run between polls),
and downloads the error report; the contacts are in the database."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import expect
from sqlalchemy import select

from server.contacts import define_field
from server.db import get_session
from server.models import Contact, FieldDefinition

from ..helpers import run_worker
from .conftest import make_user, shot, sign_in

CSV = (
    "E-Mail,First Name,Tier,Notes\n"
    "ana@example.com,Ana,pro,=1+1\n"
    "bo@example,Bo,free,\n"
    "<script>alert(1)</script>@example.com,Cy,free,\n"
    "dee@example.com,Dee,team,hi\n"
)


def test_an_editor_imports_a_csv_watches_it_finish_and_downloads_the_error_report(app, page):
    with app.app_context():
        define_field(get_session(), "plan", "string")
        get_session().commit()
    make_user(app, "ed@example.com", role="editor")
    sign_in(page, "ed@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Imports").click()
    page.get_by_label("CSV file").set_input_files(
        {"name": "people.csv", "mimeType": "text/csv", "buffer": CSV.encode()}
    )
    with page.expect_response(re.compile(r"/admin/imports/pieces\?")) as piece:  # sent in pieces by admin.js
        page.get_by_role("button", name="Upload").click()
    assert piece.value.status == 200
    expect(page.locator(".flash-message")).to_contain_text("people.csv is uploaded")
    # the preview shows the hostile cell as text
    expect(page.locator("#import-preview tbody tr")).to_have_count(4)
    expect(page.locator("#import-preview")).to_contain_text("<script>alert(1)</script>@example.com")
    expect(page.get_by_label("E-Mail", exact=True)).to_have_value("email")
    expect(page.get_by_label("First Name", exact=True)).to_have_value("first_name")
    expect(page.get_by_label("Notes", exact=True)).to_have_value("-")
    page.get_by_label("Tier", exact=True).select_option("plan")
    page.get_by_label("Fill empty only", exact=False).check()
    shot(page, "import-mapping")
    page.get_by_role("button", name="Start the import").click()
    expect(page.locator(".flash-message")).to_contain_text("is queued")
    expect(page.locator("#import-status")).to_have_text("queued")
    run_worker(app)  # between polls
    expect(page.locator("#import-percent")).to_have_text("100%", timeout=15000)
    expect(page.locator("#count-created")).to_have_text("2")
    expect(page.locator("#count-errors")).to_have_text("2")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download the error report (CSV)").click()
    download = info.value
    assert download.suggested_filename.startswith("import-") and download.suggested_filename.endswith("-errors.csv")
    lines = Path(download.path()).read_bytes().split(b"\r\n")
    assert lines[0] == b"row,column,error,what to do"
    assert [line.split(b",")[:2] for line in lines[1:3]] == [[b"3", b"E-Mail"], [b"4", b"E-Mail"]]
    assert b"is not a valid address" in lines[1] and lines[3] == b""
    shot(page, "import-done")
    with app.app_context():
        people = {c.email: (c.first_name, c.fields) for c in get_session().scalars(select(Contact))}
    assert people == {"ana@example.com": ("Ana", {"plan": "pro"}), "dee@example.com": ("Dee", {"plan": "team"})}


def test_an_editor_maps_a_column_to_a_new_custom_field_and_the_contacts_get_its_values(app, page):
    make_user(app, "ed@example.com", role="editor")
    sign_in(page, "ed@example.com")
    page.goto("/admin/imports/")
    page.get_by_label("CSV file").set_input_files(
        {
            "name": "shop.csv",
            "mimeType": "text/csv",
            "buffer": b"Email,Favourite Colour,Visits\nana@example.com,green,3\n",
        }
    )
    page.get_by_role("button", name="Upload").click()
    expect(page.locator(".flash-message")).to_contain_text("shop.csv is uploaded")
    name = page.get_by_label("Name of the new field for Favourite Colour")
    expect(name).to_be_hidden()  # until the column is to make a new field
    page.get_by_label("Favourite Colour", exact=True).select_option(label="New custom field…")
    expect(name).to_be_visible()
    expect(name).to_have_value("favourite_colour")  # named after the header, editable
    name.fill("colour")
    page.get_by_label("Visits", exact=True).select_option(label="New custom field…")
    page.get_by_label("Type of the new field for Visits").select_option(label="number")
    # refused for another reason first: no field is made, and the choices stay
    page.get_by_label("Email", exact=True).select_option("-")
    page.get_by_role("button", name="Start the import").click()
    expect(page.locator(".flash-message")).to_contain_text("Map a column to email or external_id")
    with app.app_context():
        assert get_session().scalars(select(FieldDefinition)).all() == []
    expect(page.get_by_label("Name of the new field for Favourite Colour")).to_have_value("colour")
    expect(page.get_by_label("Type of the new field for Visits")).to_have_value("number")
    page.get_by_label("Email", exact=True).select_option("email")
    shot(page, "import-new-field")
    page.get_by_role("button", name="Start the import").click()
    expect(page.locator(".flash-message").first).to_contain_text("New custom field(s) for the import: colour, visits.")
    run_worker(app)
    expect(page.locator("#import-percent")).to_have_text("100%", timeout=15000)
    with app.app_context():
        ana = get_session().scalar(select(Contact))
        assert ana.fields == {"colour": "green", "visits": 3}
        fields = dict(get_session().execute(select(FieldDefinition.name, FieldDefinition.type)).all())
    assert fields == {"colour": "string", "visits": "number"}
    page.goto(f"/admin/contacts/{ana.id}")  # the contact's page shows them
    expect(page.get_by_label("colour", exact=True)).to_have_value("green")
    expect(page.get_by_label("visits", exact=True)).to_have_value("3")
