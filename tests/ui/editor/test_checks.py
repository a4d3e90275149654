"""The server's checks as the editor shows them (problems, fixes, late or failed answers), completion, format."""

from __future__ import annotations

import json

from playwright.sync_api import expect

from ..conftest import shot
from ..editor_helpers import (
    choose,
    completions,
    content,
    doc,
    line_col,
    place_cursor,
    problem_tooltip,
    set_doc,
    take_fix,
    until,
)
from .conftest import VOCABULARY


def sned_checker(body, message='unknown step "sned" — did you mean "send"?'):
    """The checker's answer for a source: one problem, the step "sned" (with its hint and fix), when it has one."""
    source = body["source"]
    if "sned" not in source:
        return {"diagnostics": []}
    line, col = line_col(source, "sned")
    return {
        "diagnostics": [
            {
                "severity": "error",
                "line": line,
                "col": col,
                "end_line": line,
                "end_col": col + 4,
                "message": message,
                "hint": "steps are if, send, tag, wait",
                "fixes": [
                    {
                        "label": 'Change to "send"',
                        "line": line,
                        "col": col,
                        "end_line": line,
                        "end_col": col + 4,
                        "insert": "send",
                    }
                ],
            }
        ]
    }


def test_a_typo_is_marked_where_the_server_says_with_message_hint_and_a_one_click_fix(editor, endpoints):
    endpoints.validate = sned_checker
    text = doc(editor)
    place_cursor(editor, text.index("  wait 3d"))
    editor.keyboard.type("  sned sms reminder\n")
    mark = editor.locator("#source + .nudge-editor .cm-lintRange-error")
    expect(mark).to_have_text("sned")
    request = endpoints.validate_requests[-1]
    assert request.method == "POST"
    assert request.headers["x-csrf-token"] == "token-from-data-csrf"
    assert request.headers["content-type"] == "application/json"
    assert request.post_data_json == {"source": doc(editor)}
    line, col = line_col(doc(editor), "sned")
    assert (line, col) == (5, 3)

    problem_tooltip(editor, mark, 'unknown step "sned" — did you mean "send"?', "steps are if, send, tag, wait")
    shot(editor, "editor-diagnostic")
    take_fix(editor, mark, 'Change to "send"')
    assert "  send sms reminder\n" in doc(editor) and "sned" not in doc(editor)
    assert editor.locator("#source").input_value() == doc(editor)
    expect(mark).to_have_count(0)


def test_an_open_problem_tooltip_stays_through_a_check_that_finds_the_same_and_its_fix_still_works(editor, endpoints):
    """Typing elsewhere checks the rule again; an answer with the same problems at the same places changes nothing
    under the pointer. An answer that says something else replaces the marks (and closes the tooltip)."""
    endpoints.hold_validation = True

    def answer_held():  # each held check answered for its own text, as the server would
        for route, request in endpoints.held:
            route.fulfill(
                status=200,
                headers={"Content-Type": "application/json"},
                body=json.dumps(endpoints.validate(request.post_data_json)),
            )
        endpoints.held.clear()

    def answered() -> None:
        """Wait for the check of the text as it stands (checks of it half typed, or the mount's, may come before
        it), answer every check held, and let the page read the answers (only the latest one counts)."""
        text = doc(editor)
        until(editor, lambda: any(r.post_data_json["source"] == text for _, r in endpoints.held), "the check")
        with editor.expect_event("requestfinished"):
            answer_held()
        editor.evaluate("() => new Promise(done => setTimeout(done, 200))")  # time for the answer to be read

    endpoints.validate = sned_checker
    place_cursor(editor, doc(editor).index("  wait 3d"))
    editor.keyboard.type("  sned sms reminder\n")
    answered()
    mark = editor.locator("#source + .nudge-editor .cm-lintRange-error")
    expect(mark).to_have_text("sned")
    hint = "steps are if, send, tag, wait"
    tooltip = problem_tooltip(editor, mark, 'unknown step "sned" — did you mean "send"?', hint)

    # the pointer stays on the mark while the text changes on other lines, and the rule is checked again each time
    endpoints.validate = lambda body: sned_checker(body, message="a different problem")
    editor.keyboard.type("  tag vip\n")
    answered()
    expect(tooltip).to_have_count(0)  # the answer changed what the mark says: its old tooltip is gone
    editor.mouse.move(0, 0)
    problem_tooltip(editor, mark, "a different problem", hint)

    editor.keyboard.type("  tag new\n")  # the same answer again
    answered()
    assert "  tag new\n" in endpoints.validate_requests[-1].post_data_json["source"]
    expect(tooltip).to_be_visible()
    expect(tooltip.locator(".nudge-diagnostic-message")).to_have_text("a different problem")
    tooltip.get_by_role("button", name='Change to "send"').click()
    assert "  send sms reminder\n" in doc(editor) and "sned" not in doc(editor)
    answered()
    expect(mark).to_have_count(0)


def test_columns_count_characters_and_a_point_widens_to_its_word(editor, endpoints):
    source = 'when member.joined then\n  note "café 🎉 ok"; tagg "x"\nend\n'
    line, col = line_col(source, "tagg")
    assert col == 21  # in characters: the emoji is one (two UTF-16 units in the browser)
    endpoints.validate = lambda body: {
        "diagnostics": [
            {
                "severity": "warning",
                "line": line,
                "col": col,
                "end_line": None,
                "end_col": None,
                "message": "a warning at one point",
                "hint": None,
                "fixes": [],
            }
        ]
    }
    set_doc(editor, source)
    expect(editor.locator("#source + .nudge-editor .cm-lintRange-warning")).to_have_text("tagg")


def test_only_the_latest_check_counts_and_a_late_answer_is_dropped(editor, endpoints):
    endpoints.hold_validation = True
    set_doc(editor, "when member.joined then\n  first draft\n")
    until(editor, lambda: len(endpoints.held) == 1, "the first check")
    set_doc(editor, "when member.joined then\n  second draft\n")
    until(editor, lambda: len(endpoints.held) == 2, "the second check")
    (old_route, _), (new_route, new_request) = endpoints.held
    line, col = line_col(new_request.post_data_json["source"], "second")
    new_route.fulfill(
        status=200,
        headers={"Content-Type": "application/json"},
        body=json.dumps(
            {
                "diagnostics": [
                    {
                        "severity": "error",
                        "line": line,
                        "col": col,
                        "end_line": line,
                        "end_col": col + 6,
                        "message": "from the latest check",
                        "hint": None,
                        "fixes": [],
                    }
                ]
            }
        ),
    )
    mark = editor.locator("#source + .nudge-editor .cm-lintRange-error")
    expect(mark).to_have_text("second")
    with editor.expect_event("requestfinished"):
        old_route.fulfill(
            status=200,
            headers={"Content-Type": "application/json"},
            body=json.dumps(
                {
                    "diagnostics": [
                        {
                            "severity": "error",
                            "line": 1,
                            "col": 1,
                            "end_line": 1,
                            "end_col": 5,
                            "message": "from an older check",
                            "hint": None,
                            "fixes": [],
                        }
                    ]
                }
            ),
        )
    editor.evaluate("() => new Promise(done => setTimeout(done, 200))")  # time for the late answer to be read
    expect(mark).to_have_count(1)
    expect(mark).to_have_text("second")


def test_a_failed_check_shows_a_notice_and_the_editor_keeps_working(editor, endpoints):
    endpoints.validate = lambda body: None  # the connection is refused
    endpoints.failures_expected = True
    set_doc(editor, "when member.joined then\n  stop\n")
    status = editor.locator("#source + .nudge-editor [role=status]")
    expect(status).to_contain_text("The rule could not be checked: the server could not be reached")
    shot(editor, "editor-check-failed")
    endpoints.validate = lambda body: {"diagnostics": []}
    content(editor).click()
    editor.keyboard.press("Control+End")
    editor.keyboard.type("# back online")
    expect(status).to_be_hidden()
    assert doc(editor).endswith("# back online")


def test_completion_offers_the_instances_names_where_the_language_expects_them(editor, endpoints):
    set_doc(editor, "")
    place_cursor(editor, 0)
    editor.keyboard.type("when ")
    events = completions(editor, explicit=True)
    assert set(VOCABULARY["events"]) <= set(events) and "every day at" in events
    editor.keyboard.type("member.joined and contact.")
    assert completions(editor, explicit=True) == ["email", "first_name", "renewal_date"]
    editor.keyboard.type("email is set and dom")
    offered = completions(editor, explicit=True)
    assert offered[0] == "domain"
    expect(editor.locator(".cm-tooltip-autocomplete li", has_text="domain")).to_contain_text("domain(string) → string")
    choose(editor, "domain")
    editor.keyboard.type('contact.email) == "example.com" then\n')
    steps = completions(editor, "cr")
    assert steps[0] == "crm_push"
    expect(editor.locator(".cm-tooltip-autocomplete li", has_text="crm_push")).to_contain_text(
        "push the contact to the CRM"
    )
    choose(editor, "crm_push")
    editor.keyboard.type("\nsend ")
    assert completions(editor, explicit=True) == ["email", "sms", "webhook"]
    assert completions(editor, "sms ", explicit=True) == ["reminder"]
    choose(editor, "reminder")
    editor.keyboard.type('\ntag "')
    assert completions(editor, explicit=True) == ['"at-risk"', '"vip"']
    choose(editor, '"vip"')
    editor.keyboard.type("\nif in segment ")
    assert completions(editor, explicit=True) == ['"trial members"']
    shot(editor, "editor-completion")
    choose(editor, '"trial members"')
    assert doc(editor) == (
        'when member.joined and contact.email is set and domain(contact.email) == "example.com" '
        'then\n  crm_push\n  send sms reminder\n  tag "vip"\n  if in segment "trial members"'
    )
    editor.keyboard.type(" then\n")
    inside_if = completions(editor, explicit=True)
    assert {"send", "wait", "stop", "crm_push", "end", "else", "elif"} <= set(inside_if)
    assert "once per contact" not in inside_if
    # the header of a named rule offers header lines
    set_doc(editor, 'rule "R"\n  ')
    place_cursor(editor, len(doc(editor)))
    assert completions(editor, "on") == ["on cap", "once per contact"]
    assert endpoints.vocabulary_requests == 1


def test_format_replaces_the_text_as_one_undoable_change(editor, endpoints):
    messy = "when member.joined then send email welcome; wait 3d"
    tidy = "when member.joined then\n  send email welcome\n  wait 3d\nend\n"
    endpoints.format = lambda body: {"source": tidy} if body["source"] == messy else {"diagnostics": []}
    set_doc(editor, messy)
    editor.get_by_role("button", name="Format").click()
    expect(editor.locator("#source + .nudge-editor .cm-line").nth(3)).to_have_text("end")
    assert doc(editor) == tidy
    assert editor.locator("#source").input_value() == tidy
    assert endpoints.format_requests[-1].headers["x-csrf-token"] == "token-from-data-csrf"
    content(editor).focus()
    editor.keyboard.press("Control+z")
    assert doc(editor) == messy


def test_format_marks_the_problems_when_the_rule_cannot_be_formatted(editor, endpoints):
    endpoints.format = lambda body: {
        "diagnostics": [
            {
                "severity": "error",
                "line": 1,
                "col": 6,
                "end_line": 1,
                "end_col": 12,
                "message": "an event name has a dot",
                "hint": "name events `thing.happened`",
                "fixes": [],
            }
        ]
    }
    set_doc(editor, "when signup then stop")
    editor.get_by_role("button", name="Format").click()
    expect(editor.locator("#source + .nudge-editor .cm-lintRange-error")).to_have_text("signup")
    expect(editor.locator("#source + .nudge-editor [role=status]")).to_contain_text("fix the problems marked")
    assert doc(editor) == "when signup then stop"
