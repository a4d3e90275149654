"""The whole path of issue #10 in one real browser, on the live server with a real Redis, worker and SMTP server.

An admin gives the website an API key and adds a viewer; an editor writes a rule with a typo in the editor, takes
its one-click fix, tries it on a made-up contact, activates it after its plan; the website posts an event over
HTTP; the worker sends the welcome; the editor finds the contact and its message and journey trace; a second
welcome is refused by the mail server, and the editor resends it from Messages until its bytes arrive; the viewer
reads the rule and can change nothing. Each main page is saved as a screenshot under tests/ui/screenshots/.
"""

from __future__ import annotations

import json
import re
import urllib.request

import pytest
from playwright.sync_api import expect

from server.db import get_session
from server.engine.render import save_template

from ..engine.test_resend import FlakySmtp
from ..helpers import run_worker
from .conftest import make_user, shot, sign_in
from .editor_helpers import doc, marks, problem_tooltip, take_fix, try_it, type_text, where

RULE = "rule-source"
TYPO = 'rule "Welcome"\nwhen form.submitted then\n  sned email welcome\nend\n'
FIXED = TYPO.replace("sned", "send")


def _nav(page, name: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(name)


def _post_event(base_url: str, key: str, email: str) -> tuple[int, dict]:
    """What the website does: POST /api/v1/events over HTTP with its API key."""
    body = json.dumps({"contact": {"email": email}, "event": "form.submitted", "props": {"form": "signup"}})
    request = urllib.request.Request(
        f"{base_url}/api/v1/events",
        data=body.encode(),
        method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        return response.status, json.loads(response.read())


@pytest.mark.slow
def test_write_try_activate_receive_find_resend_and_a_viewer_cannot_edit(
    app, live_server, page, other_page, smtp_server
):
    smtp_server.stop()
    smtp_server.handler = FlakySmtp()  # a mail server that can refuse a message
    smtp_server.start()
    with app.app_context():
        save_template(
            get_session(),
            "email",
            "welcome",
            {"subject": "Welcome aboard", "txt": "Hello {{ contact.email }}, welcome."},
        )
        get_session().commit()
    make_user(app, "boss@example.com", role="admin")
    make_user(app, "ed@example.com", role="editor")

    # an admin gives the website an API key and adds a viewer
    admin = other_page
    sign_in(admin, "boss@example.com")
    _nav(admin, "API keys")
    admin.get_by_label("Name").fill("website")
    admin.get_by_label("Scope").select_option("ingest")
    admin.get_by_role("button", name="Create key").click()
    key = admin.locator("#secret").inner_text().strip()
    admin.get_by_role("link", name="Done").click()
    shot(admin, "journey-apikeys")
    _nav(admin, "Users")
    admin.get_by_role("link", name="New user").click()
    admin.get_by_label("Email").fill("vic@example.com")
    admin.get_by_label("Role", exact=True).select_option("viewer")
    admin.get_by_role("button", name="Create user").click()
    viewer_password = admin.locator("#secret").inner_text().strip()
    _nav(admin, "Users")
    expect(admin.get_by_role("row").filter(has_text="vic@example.com")).to_contain_text("viewer")
    shot(admin, "journey-users")

    # the editor writes the rule with a typo; the checker marks it where it is, with its fix
    sign_in(page, "ed@example.com")
    shot(page, "journey-dashboard-before")
    _nav(page, "Rules")
    page.get_by_role("link", name="New rule").click()
    type_text(page, TYPO, RULE)
    mark = marks(page, "error", RULE)
    expect(mark).to_have_text("sned")
    assert where(mark, RULE) == (3, 3)
    problem_tooltip(page, mark, 'unknown step "sned" — did you mean "send"?', "steps are if, note, notify")
    shot(page, "journey-editor-typo")
    take_fix(page, mark, 'Replace with "send"')
    expect(mark).to_have_count(0)
    assert doc(page, RULE) == FIXED
    shot(page, "journey-editor")

    # Try it: a made-up contact, the sample timeline, the real engine on a virtual clock
    result = try_it(page, "email = made.up@example.com\nfirst_name = Mia")
    expect(result).to_contain_text("1 send(s)")
    expect(result).to_contain_text("sent email welcome")
    shot(page, "journey-try-it")

    # save, see the plan, activate
    page.get_by_role("button", name="Save draft").click()
    page.get_by_role("status").get_by_text("Saved v1 of 'Welcome' as a draft").wait_for()
    page.get_by_role("link", name="Activate v1…").click()
    expect(page.locator("#plan")).to_contain_text("+ rule 'Welcome' (new, v1)")
    shot(page, "journey-plan")
    page.get_by_role("button", name="Activate v1").click()
    page.get_by_role("status").get_by_text("Activated v1 of 'Welcome'.").wait_for()
    expect(page.locator(".page-head .badge")).to_have_text("active")
    _nav(page, "Rules")
    expect(page.get_by_role("row").filter(has=page.get_by_role("link", name="Welcome"))).to_contain_text("active")
    shot(page, "journey-rules-list")

    # the website posts a sign-up over HTTP; the worker sends the welcome through the real SMTP server
    status, answer = _post_event(live_server, key, "bea@example.com")
    assert status == 202, answer
    run_worker(app)
    [arrived] = smtp_server.wait_for(1)
    assert arrived["To"] == "bea@example.com" and arrived["Subject"] == "Welcome aboard"
    assert b"Hello bea@example.com, welcome." in smtp_server.raw[0]

    # the editor finds the contact: the message and the journey's trace are in its timeline
    _nav(page, "Contacts")
    page.get_by_label("Search by").select_option("email")
    page.get_by_label("Search for").fill("bea@")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("region", name="Contacts").get_by_role("link", name="bea@example.com").click()
    timeline = page.locator("ol.timeline")
    message = timeline.locator(".entry-message").filter(has_text="email welcome")
    expect(message.locator(".entry-head .badge")).to_have_text("sent")
    expect(timeline.locator(".entry-journey").filter(has_text="entered because form.submitted")).to_have_count(1)
    expect(timeline.locator(".entry-event").filter(has_text="form.submitted")).to_have_count(1)
    expect(page.get_by_role("region", name="Journeys", exact=True)).to_contain_text("Welcome")
    page.get_by_text(re.compile(r"The trace, as nudge explain \d+ prints it")).click()
    expect(page.locator("pre.trace")).to_contain_text("Welcome: entered because form.submitted")
    shot(page, "journey-contact")

    # the next welcome is refused by the mail server: failed; resent from Messages, it arrives
    smtp_server.handler.refuse = "554 5.6.0 message content refused"
    status, answer = _post_event(live_server, key, "cy@example.com")
    assert status == 202, answer
    run_worker(app)
    smtp_server.handler.refuse = None
    _nav(page, "Messages")
    row = page.locator("tr[id^='message-']").filter(has_text="cy@example.com")
    expect(row).to_contain_text("failed")
    expect(row).to_contain_text("5.6.0 message content refused")
    message_id = row.get_attribute("id").removeprefix("message-")
    shot(page, "journey-messages")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name=f"Resend message {message_id}").click()
    page.get_by_role("status").get_by_text(f"1 message(s) queued to be sent again: #{message_id}.").wait_for()
    run_worker(app)
    resent = smtp_server.wait_for(2)[1]
    assert resent["To"] == "cy@example.com" and resent["Subject"] == "Welcome aboard"
    assert b"Hello cy@example.com, welcome." in smtp_server.raw[1]
    page.get_by_label("Show", exact=True).select_option("all")
    page.get_by_role("button", name="Show").click()
    expect(page.locator(f"#message-{message_id}")).to_contain_text("sent")

    _nav(page, "Tasks")
    shot(page, "journey-tasks")
    _nav(page, "Dashboard")
    shot(page, "journey-dashboard")

    # the viewer reads the rule and cannot change it: no controls, a read-only editor, and a forged POST refused
    admin.get_by_role("button", name="Sign out").click()
    sign_in(admin, "vic@example.com", viewer_password)
    viewer = admin
    _nav(viewer, "Rules")
    assert viewer.get_by_role("link", name="New rule").count() == 0
    viewer.get_by_role("link", name="Welcome").click()
    editor = viewer.get_by_role("textbox", name="Rule text")
    expect(editor).to_have_attribute("aria-readonly", "true")
    expect(editor).to_contain_text("send email welcome")
    for name in ("Save draft", "Format", "Pause", "Run"):
        assert viewer.get_by_role("button", name=name).count() == 0, name
    assert viewer.get_by_role("link", name=re.compile("Activate")).count() == 0
    shot(viewer, "journey-viewer-rule")
    rule_id = viewer.url.rstrip("/").rsplit("/", 1)[1]
    refused = viewer.evaluate(
        """async (id) => {
        const token = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token'];
        const body = new URLSearchParams({csrf_token: token});
        return (await fetch('/admin/rules/' + id + '/pause', {method: 'POST', body})).status; }""",
        rule_id,
    )
    assert refused == 403
    viewer.reload()
    expect(viewer.locator(".page-head .badge")).to_have_text("active")  # nothing changed
