"""Templates in a real browser: create an email template in the Jinja editor (the CodeMirror bundle), edit it and
watch the preview follow, choose a contact with hostile fields (shown escaped, the HTML in a sandboxed frame that
runs nothing), then send a test that arrives at the local SMTP server marked as a test; the page still works when
the editor bundle does not load; a viewer reads only."""

from __future__ import annotations

import re

from playwright.sync_api import expect
from sqlalchemy import select

from server.db import get_session
from server.models import Contact, Template

from .conftest import make_user, shot, sign_in
from .test_editor_bundle import ROOT, sources_stamp

SCRIPT = "<script>alert(1)</script>"
BUNDLE = ROOT / "server" / "static" / "dist" / "template-editor.js"


def _set_part(page, part: str, text: str) -> None:
    """Replace a part's text in its CodeMirror editor as one edit (as a paste), which the textarea follows."""
    page.evaluate(
        "([id, text]) => { const view = window.nudgeTemplateEditor.editorFor(id);"
        " view.dispatch({changes: {from: 0, to: view.state.doc.length, insert: text}}); }",
        [f"part-{part}", text],
    )


def _hostile_contact(app) -> None:
    with app.app_context():
        session = get_session()
        session.add(Contact(email="mallory@example.com", first_name=SCRIPT, fields={}))
        session.commit()


def test_edit_a_template_see_the_preview_follow_and_send_a_test_that_arrives(app, page, smtp_server):
    _hostile_contact(app)
    make_user(app, "ed@example.com", role="editor")
    sign_in(page, "ed@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Templates").click()
    page.get_by_role("link", name="New email template").click()
    page.get_by_label("Name").fill("welcome")
    expect(page.locator(".template-editor .cm-content")).to_have_count(3)  # subject, html, txt: the email parts
    _set_part(page, "subject", "Hello {{ contact.first_name }}")
    _set_part(page, "html", "<p>Hi {{ contact.first_name }}</p>")
    page.locator("#part-txt + .template-editor .cm-content").click()
    page.keyboard.type("Hi {{ contact.first_name }}")  # typed: the editor closes the braces as they are typed
    preview = page.locator("#preview")
    expect(preview.locator('pre[data-part="txt"]')).to_have_text("Hi Ana")
    expect(page.locator("#part-txt + .template-editor .cm-content")).to_have_text("Hi {{ contact.first_name }}")
    page.get_by_role("button", name="Create").click()
    page.get_by_role("status").get_by_text("Created the email template 'welcome'.").wait_for()
    with app.app_context():
        assert get_session().scalar(select(Template.parts)) == {
            "subject": "Hello {{ contact.first_name }}",
            "html": "<p>Hi {{ contact.first_name }}</p>",
            "txt": "Hi {{ contact.first_name }}",
        }

    page.locator("#part-txt + .template-editor .cm-content").click()
    page.keyboard.press("End")
    page.keyboard.type(", welcome aboard")
    expect(preview.locator('pre[data-part="txt"]')).to_have_text("Hi Ana, welcome aboard")
    page.get_by_label("Contact's email").fill("mallory@example.com")
    expect(preview).to_contain_text("Rendered for contact #")
    expect(preview.locator('pre[data-part="txt"]')).to_have_text(f"Hi {SCRIPT}, welcome aboard")  # text, not markup
    frame = page.frame_locator("iframe.preview-html")
    expect(frame.locator("p")).to_have_text(f"Hi {SCRIPT}")
    assert preview.locator("iframe.preview-html").get_attribute("sandbox") == ""
    shot(page, "templates-editor")

    page.get_by_label("Send a test to").fill("tester@example.com")
    page.get_by_role("button", name="Send test").click()
    page.get_by_role("status").get_by_text("Sent a test of 'welcome' to tester@example.com.").wait_for()
    smtp_server.wait_for(1)
    raw = smtp_server.raw[0]
    assert b"\r\nTo: tester@example.com\r\n" in raw
    assert b"\r\nSubject: [Test] Hello =?utf-8?q?=3Cscript=3Ealert=281=29=3C/script=3E?=\r\n" in raw or (
        b"\r\nSubject: [Test] Hello <script>alert(1)</script>\r\n" in raw
    )
    assert b"\r\nX-Nudge-Test: yes\r\n" in raw
    assert b"Hi <script>alert(1)</script>, welcome aboard" in raw  # the text part, with the unsaved edit
    assert b"<p>Hi &lt;script&gt;alert(1)&lt;/script&gt;</p>" in raw  # the html part, escaped

    page.goto("/admin/templates/")
    expect(page.locator("#templates-table")).to_contain_text("welcome")
    expect(page.locator("#templates-table")).to_contain_text("by ed@example.com")
    shot(page, "templates-list")


def test_without_the_editor_bundle_the_textareas_and_preview_still_work(app, page):
    page.route("**/static/dist/template-editor.js", lambda route: route.abort())
    make_user(app, "ed@example.com", role="editor")
    sign_in(page, "ed@example.com")
    page.goto("/admin/templates/new?channel=sms")
    page.get_by_label("Name").fill("reminder")
    page.locator("#part-txt").fill("Zażółć {{ contact.first_name }}")
    facts = page.locator(".preview-facts")
    expect(facts).to_contain_text("UCS-2")
    expect(facts).to_contain_text("Segments")
    page.get_by_role("button", name="Create").click()
    page.get_by_role("status").get_by_text("Created the sms template 'reminder'.").wait_for()
    page.locator("#part-txt").fill("{% if %}")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("Not saved: 1 problem(s); the first, in txt, line 1")
    expect(page.locator("#part-txt-errors")).to_contain_text("Line 1:")
    shot(page, "templates-sms-error")


def test_a_viewer_sees_templates_read_only(app, page):
    with app.app_context():
        session = get_session()
        parts = {"subject": "News", "txt": "Hello {{ contact.first_name }}"}
        session.add(Template(channel="email", name="news", parts=parts))
        session.commit()
    make_user(app, "vi@example.com", role="viewer")
    sign_in(page, "vi@example.com")
    page.goto("/admin/templates/")
    expect(page.get_by_role("link", name=re.compile("New .* template"))).to_have_count(0)
    page.get_by_role("link", name="news").click()
    expect(page.locator("#preview pre[data-part='txt']")).to_have_text("Hello Ana")
    expect(page.get_by_role("button", name="Save")).to_have_count(0)
    expect(page.get_by_role("button", name="Send test")).to_have_count(0)
    expect(page.locator("#part-txt + .template-editor .cm-content")).to_have_attribute("aria-readonly", "true")


def test_the_committed_template_editor_bundle_is_built_from_its_sources():
    stamp = re.search(r"sources-sha256:([0-9a-f]{64})", BUNDLE.read_text().splitlines()[0])
    assert stamp and stamp.group(1) == sources_stamp(), f"{BUNDLE} is older than its sources: run `make assets`"
