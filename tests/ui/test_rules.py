"""The rules area in a real browser: write a rule with a typo and fix it from its problem, format, save a draft,
try it on a made-up contact, activate it after seeing the plan, change it, compare versions, pause and resume;
a viewer reads but cannot edit.

These drive the page as it works with the plain textarea (before the CodeMirror bundle, /static/dist/editor.js,
is built); the bundle's own assertions are added when it lands."""
from __future__ import annotations

import re

from .conftest import make_user, shot, sign_in

TYPO = 'rule "Welcome"\nwhen form.submitted then\n  sned email welcome\nend\n'
UNFORMATTED = 'rule "Welcome"\nwhen form.submitted then\n      send email welcome\nend\n'
V2 = ('rule "Welcome"\nwhen form.submitted then\n  send email welcome\n  wait 2d\n'
      '  if contact.first_name is set then\n    send email follow_up\n  end\nend\n')


def _template(app, name: str) -> None:
    from server.db import get_session
    from server.models import Template

    with app.app_context():
        get_session().add(Template(channel="email", name=name, parts={"subject": "Hi", "txt": "Hello {{ contact.first_name }}"}))
        get_session().commit()


def _source(page):
    return page.get_by_label("Rule text", exact=True)


def test_an_editor_writes_fixes_formats_saves_tries_and_activates_a_rule(app, page):
    make_user(app, "ed@example.com", role="editor")
    _template(app, "follow_up")
    sign_in(page, "ed@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Rules").click()
    assert "No rules yet" in page.get_by_role("main").inner_text()
    shot(page, "rules-empty")
    page.get_by_role("link", name="New rule").click()
    _source(page).fill(TYPO)
    page.get_by_role("button", name="Check").click()
    problem = page.locator(".problem").filter(has_text='unknown step "sned"')
    problem.wait_for()
    assert problem.get_by_role("link").inner_text() == "Line 3, column 3"  # the right line, the right column
    shot(page, "rule-typo")
    problem.get_by_role("button", name='Replace with "send"').click()
    page.get_by_role("heading", name="No problems").wait_for()
    assert _source(page).input_value() == TYPO.replace("sned", "send")

    _source(page).fill(UNFORMATTED)
    page.get_by_role("button", name="Format").click()
    page.wait_for_function("document.getElementById('rule-source').value.includes('\\n  send email')")
    assert _source(page).input_value() == TYPO.replace("sned", "send")

    page.get_by_role("button", name="Save draft").click()
    page.get_by_role("status").get_by_text("Saved v1 of 'Welcome' as a draft").wait_for()
    assert page.get_by_role("heading", level=1).inner_text() == "Welcome"
    assert page.locator(".page-head .badge").inner_text() == "draft"

    # Try it: a made-up contact with a first name and consent, the sample timeline (its trigger now), Run
    page.get_by_label("Fields").fill("email = ana@example.com\nfirst_name = Ana")
    page.get_by_label("Consent for email").select_option("granted")
    page.get_by_role("button", name="Sample timeline").click()
    page.wait_for_function("document.getElementById('try-timeline-text').value.includes('form.submitted')")
    page.get_by_role("button", name="Run").click()
    result = page.locator("#try-result")
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
    _source(page).fill(V2)
    page.get_by_role("button", name="Save draft").click()
    page.get_by_role("status").get_by_text("Saved v2 of 'Welcome' as a draft").wait_for()
    assert "Test case 'Ana gets the welcome' fails" in page.get_by_role("alert").inner_text()
    page.get_by_role("link", name="Activate v2…").click()
    plan = page.locator("#plan").inner_text()
    assert "~ rule 'Welcome' → v2" in plan and "Rules: 0 to add, 1 to change, 0 to pause." in plan
    assert page.get_by_role("radio", name=re.compile("Move them to v2 at the same step")).count() == 1
    page.get_by_role("radio", name=re.compile("Keep them on the version they entered with")).check()
    page.get_by_role("button", name="Activate v2").click()
    page.get_by_role("status").get_by_text("Activated v2 of 'Welcome'.").wait_for()

    page.get_by_role("button", name="Compare").click()
    assert page.get_by_role("heading", level=1).inner_text() == "v1 and v2 of Welcome"
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


def test_the_list_filters_by_status_and_text_and_the_address_says_so(app, page):
    from tests.helpers import load_rules

    load_rules(app, 'rule "Welcome"\nwhen form.submitted then\n  send email welcome\nend\n'
                    'rule "Billing"\nwhen invoice.paid then\n  send email receipt\nend\n')
    make_user(app, "vic@example.com", role="viewer")
    sign_in(page, "vic@example.com")
    page.goto("/admin/rules/")
    page.get_by_label("Search").fill("bill")
    page.wait_for_url(re.compile(r"q=bill"))
    page.locator("#rules-table caption").get_by_text("1 rule(s)").wait_for()
    assert page.get_by_role("link", name="Billing").is_visible() and page.get_by_role("link", name="Welcome").count() == 0
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
    source = _source(page)
    assert source.get_attribute("readonly") is not None and "send email welcome" in source.input_value()
    assert source.get_attribute("data-validate-url") is None, "the bundle is not sent to validate for a viewer"
    for name in ("Save draft", "Pause", "Run", "Check"):
        assert page.get_by_role("button", name=name).count() == 0
    shot(page, "rule-viewer")
    page.goto("/admin/rules/new")
    assert "Your role (viewer) cannot open this; it needs editor." in page.get_by_role("main").inner_text()
