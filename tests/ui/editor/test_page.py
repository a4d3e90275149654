"""The editor in its page: read-only, the form's textarea, htmx, the diff view, focus, the content security policy."""

from __future__ import annotations

import contextlib
import re
from urllib.parse import parse_qs

from playwright.sync_api import expect

from ..conftest import shot
from ..editor_helpers import content, doc


def test_a_read_only_editor_cannot_be_changed(editor):
    published = editor.get_by_role("textbox", name="Published version")
    expect(published).to_have_attribute("aria-readonly", "true")
    before = doc(editor, "published")
    published.click()
    editor.keyboard.type("typed")
    editor.keyboard.press("Backspace")
    assert doc(editor, "published") == before
    expect(published.locator(".nk-keyword").first).to_have_text("when")


def test_the_textarea_follows_the_editor_and_the_form_sends_it(editor, endpoints):
    content(editor).click()
    editor.keyboard.press("Control+End")
    editor.keyboard.type("# edited in the browser")
    typed = doc(editor)
    editor.get_by_role("button", name="Save draft").click()
    expect(editor.locator("body")).to_contain_text("saved")
    sent = parse_qs(endpoints.submitted[-1])
    assert typed.endswith("end\n# edited in the browser")
    assert sent["source"][0].replace("\r\n", "\n") == typed  # forms send CRLF line ends


def test_editors_arriving_through_htmx_are_mounted_and_send_the_hx_headers_token(editor, endpoints):
    editor.get_by_role("button", name="Load another editor").click()
    second = editor.get_by_role("textbox", name="Second rule")
    expect(second).to_be_visible()
    expect(second.locator(".nk-event")).to_have_text("form.submitted")
    with editor.expect_request(
        lambda r: r.url.endswith("/__editor__/validate") and r.post_data_json["source"].startswith("# mine")
    ) as checked:
        second.click()
        editor.keyboard.press("Control+Home")
        editor.keyboard.type("# mine\n")
    assert checked.value.headers["x-csrf-token"] == "token-from-hx-headers"


def test_the_diff_shows_both_versions_side_by_side_read_only(editor):
    diff = editor.locator("#diff .cm-mergeView")
    expect(diff).to_be_visible()
    old = editor.get_by_role("textbox", name="Version 1")
    new = editor.get_by_role("textbox", name="Version 2")
    expect(old).to_contain_text("wait 3d")
    expect(new).to_contain_text("wait 7d")
    expect(new).to_contain_text('tag "welcomed"')
    expect(old).to_have_attribute("aria-readonly", "true")
    expect(new).to_have_attribute("aria-readonly", "true")
    expect(diff.locator(".cm-changedLine").first).to_be_visible()
    expect(new.locator(".nk-duration", has_text="7d")).to_have_count(1)
    diff.scroll_into_view_if_needed()
    shot(editor, "editor-diff")


def test_tab_moves_focus_until_the_person_opts_in_and_escape_tab_always_leaves(editor):
    source = editor.get_by_role("textbox", name="Rule source")
    expect(source).to_have_attribute("aria-describedby", re.compile(r"nudge-help-"))
    source.focus()
    before = doc(editor)
    editor.keyboard.press("Tab")
    expect(editor.get_by_role("button", name="Format")).to_be_focused()
    assert doc(editor) == before
    source.focus()
    editor.keyboard.press("Control+m")  # opt in: Tab indents now
    editor.keyboard.press("Tab")
    expect(source).to_be_focused()
    assert doc(editor) != before
    editor.keyboard.press("Escape")
    editor.keyboard.press("Tab")
    expect(editor.get_by_role("button", name="Format")).to_be_focused()


def test_the_bundle_runs_under_a_strict_content_security_policy(editor):
    violations = editor.evaluate("""() => new Promise(resolve => {
        const seen = [];
        document.addEventListener('securitypolicyviolation', e => seen.push(e.violatedDirective + ' ' + e.blockedURI));
        NudgeEditor.mount(Object.assign(document.createElement('textarea'), {value: 'when a.b then stop'}));
        setTimeout(() => resolve(seen), 300);
    })""")
    assert violations == []
    # the policy is in force: an inline script is blocked (Playwright may report it; either way it must not run)
    with contextlib.suppress(Exception):
        editor.add_script_tag(content="window.inlineScriptRan = true;")
    assert editor.evaluate("window.inlineScriptRan") is None
    blocked = [e for e in editor.nudge_errors if "inline script" in e]
    assert blocked, editor.nudge_errors
    editor.nudge_errors[:] = [e for e in editor.nudge_errors if e not in blocked]
    assert editor.evaluate("typeof NudgeEditor.mount === 'function' && typeof NudgeEditor.mountDiff") == "function"
