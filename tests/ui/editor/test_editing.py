"""Reading and typing a rule: highlighting, matched and folded blocks, indentation."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from ..conftest import shot
from ..editor_helpers import completions, content, doc, mounted, place_cursor, set_doc


def test_the_rule_is_highlighted_by_kind_of_token(editor):
    set_doc(
        editor,
        'rule "Hi"\nwhen member.joined and contact.email is set then\n'
        "  wait 3d  # a pause\n  send email welcome\n  if now > 2026-01-01 then\n    stop\n  end\nend\n",
    )
    spans = editor.locator("#source + .nudge-editor .cm-content span")
    expect(spans.filter(has_text=re.compile(r"^when$"))).to_have_class(re.compile(r"\bnk-keyword\b"))
    expect(spans.filter(has_text=re.compile(r"^send$"))).to_have_class(re.compile(r"\bnk-keyword\b"))
    expect(spans.filter(has_text=re.compile(r"^is$"))).to_have_class(re.compile(r"\bnk-operator\b"))
    expect(spans.filter(has_text=re.compile(r'^"Hi"$'))).to_have_class(re.compile(r"\bnk-string\b"))
    expect(spans.filter(has_text=re.compile(r"^3d$"))).to_have_class(re.compile(r"\bnk-duration\b"))
    expect(spans.filter(has_text=re.compile(r"^2026-01-01$"))).to_have_class(re.compile(r"\bnk-date\b"))
    expect(spans.filter(has_text=re.compile(r"^member\.joined$"))).to_have_class(re.compile(r"\bnk-event\b"))
    expect(spans.filter(has_text=re.compile(r"^contact\.email$"))).to_have_class(re.compile(r"\bnk-path\b"))
    expect(spans.filter(has_text=re.compile(r"^# a pause$"))).to_have_class(re.compile(r"\bnk-comment\b"))
    expect(spans.filter(has_text=re.compile(r"^welcome$"))).to_have_class(re.compile(r"\bnk-template\b"))
    color = spans.filter(has_text=re.compile(r"^when$")).evaluate("el => getComputedStyle(el).color")
    assert color != spans.filter(has_text=re.compile(r"^member\.joined$")).evaluate("el => getComputedStyle(el).color")
    shot(editor, "editor-highlighting")


def test_a_call_of_a_condition_function_is_highlighted_as_one(editor):
    set_doc(editor, 'when form.submitted and domain(contact.email) == "example.com" then\n  crm_push\nend\n')
    spans = editor.locator("#source + .nudge-editor .cm-content span")
    expect(spans.filter(has_text=re.compile(r"^domain$"))).to_have_class(re.compile(r"\bnk-function\b"))
    expect(spans.filter(has_text=re.compile(r"^contact\.email$"))).to_have_class(re.compile(r"\bnk-path\b"))
    expect(spans.filter(has_text=re.compile(r"^crm_push$"))).to_have_class(re.compile(r"\bnk-plugin-step\b"))


def test_block_keywords_match_their_end_and_blocks_fold(editor):
    text = doc(editor)
    place_cursor(editor, text.index("if did"))
    matched = editor.locator("#source + .nudge-editor .cm-matchingBracket")
    expect(matched).to_have_count(2)
    assert matched.all_inner_texts() == ["if", "end"]
    place_cursor(editor, text.rindex("end"))
    expect(matched).to_have_count(2)
    assert matched.all_inner_texts() == ["when", "end"]
    # the rule's steps and the `if` block fold from the gutter: folded steps hide behind a placeholder
    markers = editor.locator('#source + .nudge-editor .cm-foldGutter span[title="Fold line"]')
    expect(markers).to_have_count(2)
    markers.nth(1).click()
    expect(editor.locator("#source + .nudge-editor .cm-foldPlaceholder")).to_have_count(1)
    expect(content(editor)).not_to_contain_text("keep_going")


@pytest.mark.parametrize(
    ("before", "indent"),
    [
        ('rule "R"', 2),
        ('rule "R"\n  once per contact', 2),
        ("when a.b then", 2),
        ("when a.b then\n  stop\nend", 0),
        ("when a.b then\n  if x.y then", 4),
        ("when a.b then\n  if x.y then\n    stop\n  end", 2),
        ("when a.b then\n  split", 4),
        ("when a.b then\n  split\n    50%:", 6),
        ("when a.b then\n  split\n    50%: stop", 4),
        ("when a.b then\n  wait for x.y up to 3d then", 4),
    ],
)
def test_a_new_line_is_indented_by_the_block_it_is_in(editor, before, indent):
    set_doc(editor, before)
    place_cursor(editor, len(before))
    editor.keyboard.press("Enter")
    assert doc(editor) == before + "\n" + " " * indent


@pytest.mark.parametrize(
    ("before", "start", "last"),
    [("when member.joined then\n  ", "sto", "p"), ("when member.joined and contact.email is set ", "the", "n")],
)
def test_enter_after_a_word_typed_in_full_starts_a_new_line(editor, before, start, last):
    # the list offered while the word was being typed must not take the Enter that ends the line
    set_doc(editor, before)
    place_cursor(editor, len(before))
    assert start + last in completions(editor, start)
    editor.wait_for_timeout(100)  # past CodeMirror's 75 ms guard against accidental picks
    editor.keyboard.type(last)
    editor.keyboard.press("Enter")
    assert doc(editor).startswith(before + start + last + "\n")


def test_enter_right_after_a_large_paste_indents_by_the_block_not_the_line_before(editor):
    # the parser has not reached the end of 20,000 pasted lines when Enter comes in the same task (on a busy machine
    # it may lag behind a short document too): Enter parses up to the cursor first, so the new line is inside the `if`
    pasted = "when member.joined then\n" + "".join(f'  tag "t{n}"\n' for n in range(20_000)) + "  if x.y then"
    mounted(editor)
    tail = editor.evaluate(
        """(text) => {
          const view = NudgeEditor.editorFor("source");
          view.dispatch({changes: {from: 0, to: view.state.doc.length, insert: text}});
          view.focus();
          view.dispatch({selection: {anchor: view.state.doc.length}});
          view.contentDOM.dispatchEvent(new KeyboardEvent("keydown", {key: "Enter", bubbles: true, cancelable: true}));
          return view.state.doc.toString().split("\\n").slice(-2);
        }""",
        pasted,
    )
    assert tail == ["  if x.y then", "    "]


def test_block_closers_line_up_with_their_opener_as_they_are_typed(editor):
    set_doc(editor, "when member.joined then\n  if contact.email is set then")
    place_cursor(editor, len(doc(editor)))
    for line in ("stop", "elif contact.phone is set then", 'tag "phone"', "else", "stop", "end"):
        editor.keyboard.press("Enter")
        editor.keyboard.type(line)
    assert doc(editor) == (
        "when member.joined then\n  if contact.email is set then\n    stop\n"
        '  elif contact.phone is set then\n    tag "phone"\n  else\n    stop\n  end'
    )
