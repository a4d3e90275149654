"""Contacts in a real browser: find a contact by each search kind, open it, see its message and journey trace in the
timeline, add a note, edit a field, export it, erase it after the confirmation; a viewer cannot edit."""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect
from sqlalchemy import select

from server.db import get_session
from server.models import Contact, ContactTag, Segment

from ..helpers import api_key, load_rules, post_event, run_worker
from .conftest import make_user, shot, sign_in

WELCOME = """rule "Welcome"
when form.submitted then
  send email welcome
  wait 3d
  tag "nurtured"
end

rule "Customers only"
when form.submitted and contact.stage == "customer" then
  tag "customer"
end
"""


def _people(app) -> int:
    with app.app_context():
        session = get_session()
        session.add(Segment(name="High scorers", condition="contact.score >= 50"))
        ana = Contact(
            email="ana.lopez@example.com",
            first_name="Ana",
            last_name="López",
            phone="+4930123456",
            score=80,
            fields={},
            tags=[ContactTag(tag="vip")],
        )
        session.add_all([ana, Contact(email="bob@example.com", first_name="Bob", last_name="Stone", fields={})])
        session.commit()
        return ana.id


def _live_contact(app, client, smtp_server) -> int:
    """ana@example.com, entered into Welcome by a form event over the API; the welcome mail really sent."""
    load_rules(app, WELCOME)
    assert post_event(client, api_key(app), email="ana@example.com").status_code == 202
    run_worker(app)
    smtp_server.wait_for(1)
    with app.app_context():
        return get_session().scalar(select(Contact.id).where(Contact.email == "ana@example.com"))


def _search(page, by: str, text: str) -> None:
    page.get_by_label("Search by").select_option(by)
    page.get_by_label("Search for").fill(text)
    page.get_by_role("button", name="Search").click()


def test_a_contact_is_found_by_each_search_kind_and_opened(app, page):
    make_user(app, "vera@example.com", role="viewer")
    ana = _people(app)
    sign_in(page, "vera@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Contacts").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Contacts"
    shot(page, "contacts")
    for by, text in (
        ("email", "ana.lo"),
        ("name", "lóp"),
        ("name", "ana l"),
        ("phone", "+49 30 123"),
        ("tag", "vip"),
        ("segment", "High scorers"),
    ):
        _search(page, by, text)
        page.wait_for_url(re.compile(rf"by={by}&"))  # the search's own page, not the one before it
        results = page.get_by_role("region", name="Contacts")
        expect(results.get_by_role("link", name="ana.lopez@example.com")).to_have_count(1)
        expect(results.get_by_role("link", name="bob@example.com")).to_have_count(0)
    shot(page, "contacts-search")
    page.get_by_role("link", name="ana.lopez@example.com").click()
    page.wait_for_url(f"**/admin/contacts/{ana}")
    assert page.get_by_role("heading", level=1).inner_text() == "Ana López"


def test_the_timeline_shows_the_message_and_the_journey_trace(app, client, page, smtp_server):
    make_user(app, "vera@example.com", role="viewer")
    cid = _live_contact(app, client, smtp_server)
    sign_in(page, "vera@example.com")
    page.goto("/admin/contacts/?by=email&q=ana@")
    page.get_by_role("link", name="ana@example.com").click()
    timeline = page.locator("ol.timeline")
    message = timeline.locator(".entry-message").filter(has_text="email welcome")
    assert message.locator(".entry-head .badge").inner_text() == "sent"
    message.get_by_text(re.compile(r"Status history")).click()
    assert "sent" in message.locator("details ul").inner_text()
    assert timeline.locator(".entry-journey").filter(has_text="entered because form.submitted").count() == 1
    assert timeline.locator(".entry-journey").filter(has_text="waited until").count() == 1
    assert timeline.locator(".entry-event").filter(has_text="form.submitted").count() == 1
    missed = timeline.locator(".entry-missed")
    assert "Customers only" in missed.inner_text() and "its condition `contact.stage" in missed.inner_text()
    journeys = page.get_by_role("region", name="Journeys", exact=True)
    assert "Welcome" in journeys.inner_text() and "active" in journeys.inner_text()
    assert "now waiting in Welcome until" in page.locator("#journeys-head + ul").inner_text()
    page.get_by_text(f"nudge explain {cid}").click()
    assert "Welcome: entered because form.submitted" in page.locator("pre.trace").inner_text()
    shot(page, "contact")
    # a viewer reads, and cannot edit: no form, and the server refuses a write all the same
    assert page.get_by_role("button", name="Save profile").count() == 0
    assert page.get_by_role("button", name="Add note").count() == 0
    assert page.get_by_role("link", name="Erase…").count() == 0
    status = page.evaluate(
        """async (id) => {
        const token = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token'];
        const body = new URLSearchParams({csrf_token: token, first_name: 'Hacked'});
        return (await fetch('/admin/contacts/' + id, {method: 'POST', body})).status; }""",
        cid,
    )
    assert status == 403


def test_an_editor_adds_a_note_and_edits_a_field(app, page):
    make_user(app, "ed@example.com", role="editor")
    ana = _people(app)
    sign_in(page, "ed@example.com")
    page.goto(f"/admin/contacts/{ana}")
    page.get_by_label("New note").fill("Called: wants the yearly plan.")
    page.get_by_role("button", name="Add note").click()
    page.get_by_role("status").get_by_text("Note added.").wait_for()
    note = page.locator("ol.timeline .entry-note")
    assert "Note by ed@example.com" in note.inner_text() and "wants the yearly plan" in note.inner_text()
    page.get_by_label("Stage").fill("customer")
    page.get_by_label("Phone").fill("not a number")
    page.get_by_role("button", name="Save profile").click()
    assert "is not a phone number" in page.get_by_role("alert").inner_text()
    assert page.locator("#f-phone").get_attribute("aria-invalid") == "true"
    shot(page, "contact-edit-error")
    page.get_by_label("Phone").fill("+49 30 999999")
    page.get_by_role("button", name="Save profile").click()
    page.get_by_role("status").get_by_text("Saved: Phone, Stage.").wait_for()
    assert page.get_by_label("Phone").input_value() == "+4930999999"
    with app.app_context():
        contact = get_session().get(Contact, ana)
        assert (contact.stage, contact.phone) == ("customer", "+4930999999")


def test_an_admin_exports_and_then_erases_after_the_confirmation(app, page):
    make_user(app, "boss@example.com", role="admin")
    ana = _people(app)
    sign_in(page, "boss@example.com")
    page.goto(f"/admin/contacts/{ana}")
    with page.expect_download() as download:
        page.get_by_role("button", name="Export JSON").click()
    assert download.value.suggested_filename == f"contact-{ana}.json"
    with open(download.value.path(), encoding="utf-8") as fh:
        data = json.load(fh)
    assert data["contact"]["email"] == "ana.lopez@example.com" and data["contact"]["tags"] == ["vip"]
    page.get_by_role("link", name="Erase…").click()
    consequences = page.get_by_role("region", name="What erasing does")
    assert "This cannot be undone." in consequences.inner_text()
    assert "a salted hash of the email" in consequences.inner_text()
    shot(page, "contact-erase")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Erase this contact").click()
    assert "tick the box" in page.get_by_role("alert").inner_text()  # refused without the tick
    page.get_by_label("I understand").check()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Erase this contact").click()
    page.wait_for_url("**/admin/contacts/")
    assert f"Contact {ana} was erased" in page.get_by_role("status").inner_text()
    with app.app_context():
        assert get_session().get(Contact, ana) is None
