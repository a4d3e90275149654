"""The code editors (CodeMirror, mounted on a textarea) keep the field's own description: a screen reader reads the
field's hint first, then the editor's keyboard help; never the help in place of the hint, nor a problem list the
mounted editor has replaced."""

from __future__ import annotations

from playwright.sync_api import expect

from server.db import get_session
from server.models import Segment

from .conftest import make_user, sign_in
from .editor_helpers import mounted


def _described(page, selector: str) -> list[tuple[str, str, str]]:
    """Each id the element's aria-describedby names, with the named element's class and text ("" when missing)."""
    return page.evaluate(
        """selector => (document.querySelector(selector).getAttribute('aria-describedby') || '').split(/\\s+/)
             .filter(Boolean).map(id => { const e = document.getElementById(id);
               return [id, e ? e.className : '', e ? e.textContent.trim() : '']; })""",
        selector,
    )


def test_the_segment_condition_editor_is_described_by_its_hint_then_the_keyboard_help(app, page):
    make_user(app, "ed@example.com", role="editor")
    sign_in(page, "ed@example.com")
    page.goto("/admin/segments/new")
    mounted(page, "segment-condition")
    described = _described(page, "#segment-condition + .nudge-editor .cm-content")
    assert described[0][0] == "segment-condition-hint", described
    assert described[0][2].startswith("As written after when … and in a rule"), described
    assert len(described) == 2 and described[1][1] == "nudge-editor-help", described
    assert "Ctrl-M" in described[1][2]


def test_the_rule_text_editor_is_described_by_its_hint_then_the_keyboard_help(app, page):
    make_user(app, "ed@example.com", role="editor")
    sign_in(page, "ed@example.com")
    page.goto("/admin/rules/new")
    mounted(page, "rule-source")
    described = _described(page, "#rule-source + .nudge-editor .cm-content")
    # the plain textarea's problem list (hidden once the editor marks the problems itself) is not read out
    assert [d[0] for d in described] == ["rule-source-hint", described[1][0]], described
    assert "rules language" in described[0][2] and described[1][1] == "nudge-editor-help", described


def test_a_read_only_segment_editor_keeps_its_hint_and_has_no_keyboard_help(app, page):
    with app.app_context():
        get_session().add(Segment(name="VIPs", condition='tag == "vip"'))
        get_session().commit()
    make_user(app, "vi@example.com", role="viewer")
    sign_in(page, "vi@example.com")
    page.goto("/admin/segments/")
    page.get_by_role("link", name="VIPs").click()
    mounted(page, "segment-condition")
    described = _described(page, "#segment-condition + .nudge-editor .cm-content")
    assert [d[0] for d in described] == ["segment-condition-hint"], described


def test_the_template_editors_are_described_by_their_own_hints(app, page):
    make_user(app, "ed@example.com", role="editor")
    sign_in(page, "ed@example.com")
    page.goto("/admin/templates/new?channel=email")
    expect(page.locator(".template-editor .cm-content")).to_have_count(3)
    for part in ("subject", "html", "txt"):
        described = _described(page, f"#part-{part} + .template-editor .cm-content")
        assert described and described[0][0] == f"part-{part}-hint" and described[0][2], (part, described)
        assert all(text for _id, _cls, text in described), (part, described)
