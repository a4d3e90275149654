"""Driving the rule editor (CodeMirror, from /static/dist/editor.js) as a person does, shared by the bundle's
component tests and the tests of the pages that carry it.

Each helper names the editor by the id of the ``<textarea data-nudge-editor>`` it is mounted on (the bundle's
fixture page uses ``source``; the rule page ``rule-source``).
"""

from __future__ import annotations

import re

from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect


def mounted(page, textarea_id="source") -> None:
    """Wait until the editor is on the page (after a navigation its bundle loads and mounts a moment later)."""
    page.wait_for_function("id => window.NudgeEditor && NudgeEditor.editorFor(id) !== null", arg=textarea_id)


def doc(page, textarea_id="source") -> str:
    mounted(page, textarea_id)
    return page.evaluate("id => NudgeEditor.editorFor(id).state.doc.toString()", textarea_id)


def set_doc(page, text: str, textarea_id="source") -> None:
    mounted(page, textarea_id)
    page.evaluate(
        "([id, text]) => { const v = NudgeEditor.editorFor(id); "
        "v.dispatch({changes: {from: 0, to: v.state.doc.length, insert: text}}) }",
        [textarea_id, text],
    )


def content(page, textarea_id="source"):
    """The editable element of an editor (CodeMirror's content DOM)."""
    return page.locator(f"#{textarea_id} + .nudge-editor .cm-content")


def place_cursor(page, offset: int, textarea_id="source") -> None:
    mounted(page, textarea_id)
    page.evaluate(
        "([id, at]) => { const v = NudgeEditor.editorFor(id); v.focus(); v.dispatch({selection: {anchor: at}}) }",
        [textarea_id, offset],
    )


def line_col(text: str, needle: str) -> tuple[int, int]:
    """1-based line and column (in characters) of the first `needle` in `text`."""
    at = text.index(needle)
    line = text.count("\n", 0, at) + 1
    return line, at - (text.rfind("\n", 0, at) + 1) + 1


def until(page, condition, what: str) -> None:
    """Let the page run (and the route handlers answer) until `condition()` holds; fail after 10 s."""
    for _ in range(200):
        if condition():
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"timed out waiting for {what}")


def completions(page, typed: str | None = None, explicit: bool = False) -> list[str]:
    """The labels completion offers after typing `typed` (and asking for completion with Ctrl-Space)."""
    popup = page.locator(".cm-tooltip-autocomplete")
    if popup.count():
        page.keyboard.press("Escape")
        expect(popup).to_have_count(0)
    if typed:
        page.keyboard.type(typed)
    if explicit:
        page.keyboard.press("Control+Space")
    # the list asked for last, not the one still shown while its query runs (typing opened one a moment before)
    # (of the editor being typed in: its textarea is just before it)
    page.wait_for_function(
        "() => NudgeEditor.completing(document.activeElement.closest('.nudge-editor').previousElementSibling)"
        " !== 'pending'"
    )
    options = popup.locator("li .cm-completionLabel")
    expect(options.first).to_be_visible()
    return options.all_inner_texts()


def choose(page, label: str) -> None:
    """Pick an offered completion with the arrow keys and Enter, as a person would."""
    selected = page.locator(".cm-tooltip-autocomplete li[aria-selected] .cm-completionLabel")
    expect(selected).to_be_visible()
    page.wait_for_timeout(100)  # CodeMirror ignores keys in the first 75 ms of a list (accidental picks)
    for _ in range(20):
        if selected.inner_text() == label:
            break
        page.keyboard.press("ArrowDown")
    expect(selected).to_have_text(label)
    page.keyboard.press("Enter")


def marks(page, severity: str = "error", textarea_id="source"):
    """The problems the editor marks in the text (CodeMirror's lint ranges) of one severity."""
    return page.locator(f"#{textarea_id} + .nudge-editor .cm-lintRange-{severity}")


def type_text(page, text: str, textarea_id="source") -> None:
    """Replace the editor's text by typing *text* line by line, as a person does: the editor indents each new line
    and lines a block's closer up with its opener, so lines are typed without their leading spaces; an offered
    completion is dismissed (Escape) before Enter, so Enter starts a new line.

    Completion opens ~100 ms after the last key (longer on a busy machine): Enter waits until it is no longer
    pending, so that a list opening just after a look found none cannot take the Enter (and a word with it)."""
    content(page, textarea_id).click()
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    for number, line in enumerate(text.split("\n")):
        if number:
            until(page, lambda: completing(page, textarea_id) != "pending", "completion to settle")
            if completing(page, textarea_id) == "active":
                page.keyboard.press("Escape")
                until(page, lambda: completing(page, textarea_id) is None, "completion to close")
            page.keyboard.press("Enter")
        page.keyboard.type(line.lstrip(" "))


def completing(page, textarea_id="source") -> str | None:
    """CodeMirror's completion status: "pending" (about to run, or waiting for its answer), "active", or None."""
    return page.evaluate("id => NudgeEditor.completing(id)", textarea_id)


def where(mark, textarea_id="source") -> tuple[int, int]:
    """The 1-based line and column (in characters) where a marked range (see :func:`marks`) starts in the text."""
    return tuple(
        mark.evaluate(
            """(el, id) => {
        const view = NudgeEditor.editorFor(id), at = view.posAtDOM(el, 0), line = view.state.doc.lineAt(at);
        return [line.number, [...line.text.slice(0, at - line.from)].length + 1]; }""",
            textarea_id,
        )
    )


def problem_tooltip(page, mark, message: str, hint: str):
    """Hover a marked problem and check its tooltip shows the checker's *message* and *hint*; the tooltip, whose
    buttons are the problem's one-click fixes."""
    mark.hover()
    tooltip = page.locator(".cm-tooltip-lint")
    expect(tooltip.locator(".nudge-diagnostic-message")).to_have_text(message)
    expect(tooltip.locator(".nudge-diagnostic-hint")).to_have_text(re.compile("^hint: " + re.escape(hint)))
    return tooltip


def take_fix(page, mark, name: str) -> None:
    """Click the one-click fix *name* in the tooltip of the marked problem *mark*.

    The linter checks again ~400 ms after a change and when the editor mounts; an answer that says something other
    than the marks (the mount's check landing late, say) replaces them and closes an open hover tooltip (one that
    says the same leaves it open). A person whose tooltip closed under the pointer moves it and hovers again; so
    does this, a few times, before failing.
    """
    button = page.locator(".cm-tooltip-lint").get_by_role("button", name=name)
    for _ in range(4):
        if not button.is_visible():
            page.mouse.move(0, 0)
            mark.hover()
        try:
            button.click(timeout=4000)
            return
        except PlaywrightTimeout:
            continue
    button.click()


def try_it(page, fields: str):
    """Run the rule page's Try it panel: a made-up contact with *fields* (``name = value`` lines) and consent to
    email, the sample timeline the page offers (the rule's trigger, now); the result panel once it has answered."""
    page.get_by_label("Fields").fill(fields)
    page.get_by_label("Consent for email").select_option("granted")
    page.get_by_role("button", name="Sample timeline").click()
    expect(page.locator("#try-timeline-text")).to_have_value(re.compile("form.submitted"))
    page.get_by_role("button", name="Run").click()
    result = page.locator("#try-result")
    expect(result).not_to_be_empty()
    return result
