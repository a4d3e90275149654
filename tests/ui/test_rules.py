"""The rules area in a real browser: write a rule with a typo and fix it from its problem, format, save a draft,
try it on a made-up contact, activate it after seeing the plan, change it, compare versions, pause and resume;
a viewer reads but cannot edit.

These drive the page with the CodeMirror editor (/static/dist/editor.js) mounted over the rule's textarea, as people
use it; one test drives the plain textarea the page falls back to when the bundle does not load."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import make_user, shot, sign_in
from .editor_helpers import doc, marks, problem_tooltip, set_doc, take_fix, try_it, type_text, where

TYPO = 'rule "Welcome"\nwhen form.submitted then\n  sned email welcome\nend\n'
UNFORMATTED = 'rule "Welcome"\nwhen form.submitted then\n      send email welcome\nend\n'
V2 = (
    'rule "Welcome"\nwhen form.submitted then\n  send email welcome\n  wait 2d\n'
    "  if contact.first_name is set then\n    send email follow_up\n  end\nend\n"
)


def _template(app, name: str) -> None:
    from server.db import get_session
    from server.models import Template

    with app.app_context():
        get_session().add(
            Template(channel="email", name=name, parts={"subject": "Hi", "txt": "Hello {{ contact.first_name }}"})
        )
        get_session().commit()


RULE = "rule-source"  # the id of the rule page's textarea, which the editor bundle mounts on


@pytest.mark.slow
def test_an_editor_writes_fixes_formats_saves_tries_and_activates_a_rule(app, page):
    make_user(app, "ed@example.com", role="editor")
    _template(app, "follow_up")
    sign_in(page, "ed@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Rules").click()
    expect(page.get_by_role("main")).to_contain_text("No rules yet")
    shot(page, "rules-empty")
    page.get_by_role("link", name="New rule").click()
    editor = page.get_by_role("textbox", name="Rule text")
    expect(editor).to_have_attribute("contenteditable", "true")
    # the plain textarea's Check button and problem list give way to the editor's own
    expect(page.get_by_role("button", name="Check")).to_have_count(0)
    expect(page.get_by_role("heading", name="No problems")).to_have_count(0)

    type_text(page, TYPO, RULE)
    assert doc(page, RULE) == TYPO  # the editor indented the typed lines itself
    mark = marks(page, "error", RULE)
    expect(mark).to_have_text("sned")  # the server's checker answered while typing; nothing was pressed
    assert where(mark, RULE) == (3, 3)  # the right line, the right column
    expect(page.locator(f"#{RULE} + .nudge-editor .cm-gutter-lint .cm-lint-marker-error")).to_have_count(1)
    # saving refuses the text and keeps it, marked again where the problem is
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("alert")).to_contain_text("Not saved: 1 error(s); the first, line 3, column 3")
    expect(mark).to_have_text("sned")
    assert doc(page, RULE) == TYPO and where(mark, RULE) == (3, 3)
    problem_tooltip(page, mark, 'unknown step "sned" — did you mean "send"?', "steps are if, note, notify")
    shot(page, "rule-typo")
    take_fix(page, mark, 'Replace with "send"')
    assert doc(page, RULE) == TYPO.replace("sned", "send")
    expect(mark).to_have_count(0)
    expect(page.locator(f"#{RULE}")).to_have_value(TYPO.replace("sned", "send"))  # the form field follows

    set_doc(page, UNFORMATTED, RULE)  # as pasted
    page.get_by_role("button", name="Format").click()
    expect(page.locator(f"#{RULE}")).to_have_value(TYPO.replace("sned", "send"))  # (to_have_text trims spaces)
    assert doc(page, RULE) == TYPO.replace("sned", "send")

    page.get_by_role("button", name="Save draft").click()
    page.get_by_role("status").get_by_text("Saved v1 of 'Welcome' as a draft").wait_for()
    assert page.get_by_role("heading", level=1).inner_text() == "Welcome"
    assert page.locator(".page-head .badge").inner_text() == "draft"
    assert doc(page, RULE) == TYPO.replace("sned", "send")

    # Try it: a made-up contact with a first name and consent, the sample timeline (its trigger now), Run
    result = try_it(page, "email = ana@example.com\nfirst_name = Ana")
    result.get_by_text("1 send(s)").wait_for()
    assert "sent email welcome" in result.inner_text()
    page.get_by_label("Test case name").fill("Ana gets the welcome")
    page.get_by_role("button", name="Keep this try as a test case").click()
    page.locator("#rule-cases").get_by_text("Ana gets the welcome").wait_for()
    shot(page, "rule-try")

    page.get_by_role("link", name="Activate v1…").click()
    assert "+ rule 'Welcome' (new, v1)" in page.locator("#plan").inner_text()
    shot(page, "rule-activate-plan")
    page.get_by_role("button", name="Activate v1").click()
    page.get_by_role("status").get_by_text("Activated v1 of 'Welcome'.").wait_for()
    assert page.locator(".page-head .badge").inner_text() == "active"

    # a second version: saved as a draft (its test case runs again, and fails: it sends more), then activated
    set_doc(page, V2, RULE)
    expect(marks(page, "error", RULE)).to_have_count(0)
    page.get_by_role("button", name="Save draft").click()
    page.get_by_role("status").get_by_text("Saved v2 of 'Welcome' as a draft").wait_for()
    assert "Test case 'Ana gets the welcome' fails" in page.get_by_role("alert").inner_text()
    versions = page.get_by_role("region", name="Versions")
    expect(versions.get_by_role("row")).to_have_count(3)  # the head, v2, v1
    assert "draft" in page.locator("#version-2").inner_text() and "active" in page.locator("#version-1").inner_text()
    page.get_by_role("link", name="Activate v2…").click()
    plan = page.locator("#plan").inner_text()
    assert "~ rule 'Welcome' → v2" in plan and "Rules: 0 to add, 1 to change, 0 to pause." in plan
    assert page.get_by_role("radio", name=re.compile("Move them to v2 at the same step")).count() == 1
    page.get_by_role("radio", name=re.compile("Keep them on the version they entered with")).check()
    page.get_by_role("button", name="Activate v2").click()
    page.get_by_role("status").get_by_text("Activated v2 of 'Welcome'.").wait_for()

    page.get_by_role("button", name="Compare").click()
    assert page.get_by_role("heading", level=1).inner_text() == "v1 and v2 of Welcome"
    old, new = page.get_by_role("textbox", name="v1", exact=True), page.get_by_role("textbox", name="v2", exact=True)
    expect(old).to_have_attribute("aria-readonly", "true")
    expect(new).to_contain_text("wait 2d")
    expect(old).not_to_contain_text("wait 2d")
    expect(page.locator(".cm-mergeView .cm-changedLine").first).to_be_visible()
    assert "+  wait 2d" in page.locator("pre.diff").inner_text()
    shot(page, "rule-diff")

    page.get_by_role("link", name="Welcome").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Pause").click()
    page.get_by_role("status").get_by_text("Paused 'Welcome'").wait_for()
    assert page.locator(".page-head .badge").inner_text() == "paused"
    page.get_by_role("button", name="Resume").click()
    page.get_by_role("status").get_by_text("Resumed 'Welcome'").wait_for()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Rules").click()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="Welcome"))
    assert "active" in row.inner_text() and "v2" in row.inner_text() and "ed@example.com" in row.inner_text()
    shot(page, "rules-list")


def test_a_keyboard_user_lists_the_problems_and_takes_the_fix_without_the_mouse(app, page):
    make_user(app, "ed@example.com", role="editor")
    sign_in(page, "ed@example.com")
    page.goto("/admin/rules/new")
    type_text(page, TYPO, RULE)
    expect(marks(page, "error", RULE)).to_have_text("sned")
    page.keyboard.press("Control+Shift+KeyM")  # docs/admin-editor.md: Ctrl-Shift-M lists the diagnostics
    problems = page.locator(f"#{RULE} + .nudge-editor .cm-panel-lint [role=listbox]")
    expect(problems).to_be_focused()
    expect(problems.get_by_role("option")).to_have_count(1)
    expect(problems.get_by_role("option")).to_contain_text('unknown step "sned" — did you mean "send"?')
    page.keyboard.press("r")  # the fix's underlined letter: Replace with "send"
    expect(page.locator(f"#{RULE}")).to_have_value(TYPO.replace("sned", "send"))
    expect(marks(page, "error", RULE)).to_have_count(0)


def test_without_the_editor_bundle_the_plain_textarea_checks_fixes_and_formats(app, page):
    """When /static/dist/editor.js does not load, the page works with its textarea and the server's HTML."""
    make_user(app, "ed@example.com", role="editor")
    page.route("**/static/dist/editor.js", lambda route: route.abort())
    sign_in(page, "ed@example.com")
    page.goto("/admin/rules/new")
    source = page.get_by_label("Rule text", exact=True)
    source.fill(TYPO)
    page.get_by_role("button", name="Check").click()
    problem = page.locator(".problem").filter(has_text='unknown step "sned"')
    assert problem.get_by_role("link").inner_text() == "Line 3, column 3"
    problem.get_by_role("button", name='Replace with "send"').click()
    page.get_by_role("heading", name="No problems").wait_for()
    expect(source).to_have_value(TYPO.replace("sned", "send"))
    source.fill(UNFORMATTED)
    page.get_by_role("button", name="Format").click()
    expect(source).to_have_value(TYPO.replace("sned", "send"))
    page.get_by_role("button", name="Save draft").click()
    page.get_by_role("status").get_by_text("Saved v1 of 'Welcome' as a draft").wait_for()


def test_the_list_filters_by_status_and_text_and_the_address_says_so(app, page):
    from tests.helpers import load_rules

    load_rules(
        app,
        'rule "Welcome"\nwhen form.submitted then\n  send email welcome\nend\n'
        'rule "Billing"\nwhen invoice.paid then\n  send email receipt\nend\n',
    )
    make_user(app, "vic@example.com", role="viewer")
    sign_in(page, "vic@example.com")
    page.goto("/admin/rules/")
    page.get_by_label("Search").fill("bill")
    page.wait_for_url(re.compile(r"q=bill"))
    page.locator("#rules-table caption").get_by_text("1 rule(s)").wait_for()
    assert (
        page.get_by_role("link", name="Billing").is_visible() and page.get_by_role("link", name="Welcome").count() == 0
    )
    page.get_by_label("Search").fill("")
    page.get_by_label("Status").select_option("draft")
    page.wait_for_url(re.compile(r"status=draft"))
    page.get_by_text("No rule matches this filter.").wait_for()
    page.reload()  # the address holds the filter
    assert page.get_by_label("Status").input_value() == "draft"


def test_a_viewer_reads_a_rule_but_cannot_edit_it(app, page):
    from tests.helpers import load_rules

    load_rules(app)
    make_user(app, "vic@example.com", role="viewer")
    sign_in(page, "vic@example.com")
    page.goto("/admin/rules/")
    assert page.get_by_role("link", name="New rule").count() == 0
    page.get_by_role("link", name="Welcome").click()
    editor = page.get_by_role("textbox", name="Rule text")
    expect(editor).to_have_attribute("aria-readonly", "true")
    expect(editor).to_contain_text("send email welcome")
    before = doc(page, RULE)
    editor.click()
    page.keyboard.type("sned ")
    page.keyboard.press("Backspace")
    assert doc(page, RULE) == before  # the editor does not change
    field = page.locator(f"#{RULE}")
    assert field.get_attribute("readonly") is not None
    assert field.get_attribute("data-validate-url") is None, "the bundle is not sent to validate for a viewer"
    for name in ("Save draft", "Pause", "Run", "Check", "Format"):
        assert page.get_by_role("button", name=name).count() == 0
    shot(page, "rule-viewer")
    # the server refuses a viewer's write all the same, with a valid CSRF token
    rule_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    statuses = page.evaluate(
        """async (id) => {
        const token = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token'];
        const post = async (path, fields) => (await fetch(path, {method: 'POST',
            body: new URLSearchParams({csrf_token: token, ...fields})})).status;
        const source = 'rule "Welcome"\\nwhen form.submitted then\\n  stop\\nend\\n';
        return [await post('/admin/rules/' + id, {source}),
                await post('/admin/rules/' + id + '/pause', {}),
                await post('/admin/rules/' + id + '/activate', {version: '1'})]; }""",
        rule_id,
    )
    assert statuses == [403, 403, 403]
    page.goto("/admin/rules/new")
    assert "Your role (viewer) cannot open this; it needs editor." in page.get_by_role("main").inner_text()
