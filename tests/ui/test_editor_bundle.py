"""The rule editor bundle (server/static/dist/editor.js) in a real Chromium, under a strict CSP.

These are component tests of the bundle: a fixture page (tests/ui/fixtures/editor_page.html) loads the
committed bundle from the app's static route, and ``page.route`` answers the vocabulary, validate and
format URLs with fixed JSON in the documented contract (docs/admin-editor.md). The server endpoints
themselves are tested with the pages that use them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from hypothesis import HealthCheck, given, settings
from playwright.sync_api import expect

import dsl

from ..dsl import strategies
from .conftest import shot
from .editor_helpers import choose, completions, content, doc, line_col, place_cursor, problem_tooltip, set_doc, until

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "server" / "assets"
BUNDLE = ROOT / "server" / "static" / "dist" / "editor.js"
FIXTURE = Path(__file__).parent / "fixtures" / "editor_page.html"
PAGE = "/__editor__/page"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:"
)
VOCABULARY = {
    "events": ["member.joined", "form.submitted", "class.attended", "purchase.completed"],
    "fields": ["email", "first_name", "renewal_date"],
    "tags": ["vip", "at-risk"],
    "templates": {"email": ["welcome", "keep_going"], "sms": ["reminder"]},
    "segments": ["trial members"],
    "channels": ["email", "sms", "webhook"],
    "steps": [{"name": "crm_push", "detail": "push the contact to the CRM"}],
    "functions": [{"name": "domain", "detail": "domain(string) → string"}],
}
FRAGMENT = """<label for="second">Second rule</label>
<textarea id="second" data-nudge-editor data-validate-url="/__editor__/validate">when form.submitted then
  stop
</textarea>"""


@pytest.fixture
def database_url(tmp_path):
    """These tests never touch the database: one SQLite file is enough for the app serving the bundle."""
    return f"sqlite:///{tmp_path / 'nudge.db'}"


class Endpoints:
    """What the fake server answers on the page's URLs, and every request it saw."""

    def __init__(self):
        self.vocabulary_requests = 0
        self.validate = lambda body: {"diagnostics": []}
        self.format = lambda body: {"source": body["source"]}
        self.validate_requests: list = []
        self.format_requests: list = []
        self.submitted: list[str] = []
        self.held: list = []
        self.hold_validation = False
        self.failures_expected = False  # the browser logs refused requests in the console

    def install(self, page):
        page.route(
            "**/__editor__/page",
            lambda route: route.fulfill(
                status=200,
                body=FIXTURE.read_text(encoding="utf-8"),
                headers={"Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": CSP},
            ),
        )
        page.route("**/__editor__/vocabulary", self._vocabulary)
        page.route("**/__editor__/validate", self._validate)
        page.route("**/__editor__/format", self._format)
        page.route("**/__editor__/submit", self._submit)
        page.route(
            "**/__editor__/fragment",
            lambda route: route.fulfill(
                status=200, body=FRAGMENT, headers={"Content-Type": "text/html; charset=utf-8"}
            ),
        )

    @staticmethod
    def _json(route, data, status=200):
        route.fulfill(status=status, body=json.dumps(data), headers={"Content-Type": "application/json"})

    def _vocabulary(self, route, request):
        self.vocabulary_requests += 1
        self._json(route, VOCABULARY)

    def _validate(self, route, request):
        self.validate_requests.append(request)
        if self.hold_validation:
            self.held.append((route, request))
            return
        answer = self.validate(request.post_data_json)
        if answer is None:
            route.abort("connectionrefused")
        else:
            self._json(route, answer)

    def _format(self, route, request):
        self.format_requests.append(request)
        self._json(route, self.format(request.post_data_json))

    def _submit(self, route, request):
        self.submitted.append(request.post_data)
        route.fulfill(status=200, body="<p>saved</p>", headers={"Content-Type": "text/html"})


@pytest.fixture
def endpoints(page):
    fake = Endpoints()
    fake.install(page)
    return fake


@pytest.fixture
def editor(page, endpoints):
    """The fixture page, loaded, with every editor mounted; fails the test on any error in the console."""
    logged: list[str] = []
    page.on("console", lambda msg: logged.append(msg.text) if msg.type == "error" else None)
    page.goto(PAGE)
    # (no wait_for_function: Playwright evaluates its predicate with eval, which the policy forbids)
    expect(page.locator("#source + .nudge-editor .cm-content")).to_be_visible()
    expect(page.locator("#diff .cm-mergeView")).to_be_visible()
    yield page
    unexpected = [
        text
        for text in logged
        if "inline script" not in text
        and not (endpoints.failures_expected and text.startswith("Failed to load resource"))
    ]
    assert not unexpected, f"errors in the console: {unexpected}"


# ---- the committed bundle ------------------------------------------------------------------


def sources_stamp() -> str:
    """The sha256 build.mjs writes into the bundle: each source's path, byte length and bytes, sorted by path."""
    paths = ["build.mjs", "package-lock.json"] + [
        p.relative_to(ASSETS).as_posix() for p in (ASSETS / "src").rglob("*") if p.is_file()
    ]
    digest = hashlib.sha256()
    for path in sorted(p for p in paths if not p.endswith(".generated.js")):
        data = (ASSETS / path).read_bytes()
        digest.update(f"{path}\n{len(data)}\n".encode())
        digest.update(data)
    return digest.hexdigest()


def test_the_committed_bundle_is_built_from_the_current_sources():
    first_line = BUNDLE.read_text(encoding="utf-8").split("\n", 1)[0]
    stamp = re.search(r"sources-sha256:([0-9a-f]{64})", first_line)
    assert stamp, f"{BUNDLE} has no sources stamp: run `make assets`"
    assert stamp.group(1) == sources_stamp(), (
        "server/static/dist/editor.js is older than server/assets (src, build.mjs, package-lock.json): "
        "run `make assets` and commit the bundle"
    )


def test_the_bundle_ships_with_the_licenses_of_what_it_bundles():
    licenses = (BUNDLE.parent / "editor.js.LICENSES.txt").read_text(encoding="utf-8")
    for package in ("@codemirror/view", "@codemirror/merge", "@lezer/lr", "style-mod"):
        assert re.search(rf"^{re.escape(package)} \S+ \(MIT\)$", licenses, re.M), package
    assert "Permission is hereby granted" in licenses
    assert "editor.js.LICENSES.txt" in BUNDLE.read_text(encoding="utf-8").split("\n", 1)[0]


# ---- the grammar ---------------------------------------------------------------------------


def nudge_sources() -> dict[str, str]:
    """Every program in the repository: language cases, the reference's examples and the examples folder."""
    found = {p.name: p.read_text(encoding="utf-8") for p in sorted((ROOT / "tests/dsl/cases").glob("*.nudge"))}
    found |= {p.name: p.read_text(encoding="utf-8") for p in sorted((ROOT / "examples").rglob("*.nudge"))}
    reference = (ROOT / "docs/language.md").read_text(encoding="utf-8")
    for number, block in enumerate(re.findall(r"^```nudge\n(.*?)^```", reference, flags=re.M | re.S)):
        found[f"language.md#{number}"] = block
    return found


# Corners of the lark grammar: keywords spelled where names go, optional separators and `end`s.
CORNERS = [
    "when a.b then send today tomorrow",
    "when a.b then send email end",
    "when a.b then send email 3d",
    "when a.b then send email welcome-2",
    'when a.b then crm_push if send 3d 09:00 2026-01-01 5 1.5 "x" a.b',
    'when a.b then today "plugin step named like a keyword"',
    "when tag.added and score.changed.x == 1 then stop",
    "when a.b and x.y==1then stop",
    "when a.b then end",
    "when a.b then split end",
    "when a.b then split 50%: 50%: end",
    'rule "x" once per contact\nwhen a.b then stop',
    'rule "x"\n\n  always\n\n# c\nwhen a.b then\r\n stop ; ; stop\r\n',
    "when a.b then\n  if a.b then else end\n  wait for a.b up to 1d then end\nend\n\n\n",
    'when a.b and [1,] == [] and ["a", [1]] != [] then set contact.x = - 5',
    'when a.b then crm_push\nwhen c.d then stop\nrule "y"\nwhen e.f then score + 5.5',
    '\ufeffwhen a.b then note "# not a comment \\" still text" # a comment',
]


def lezer_errors(page, sources: dict[str, str]) -> dict[str, list[int]]:
    """The offsets of error nodes in each source's Lezer tree (parsed in the page by the bundle's parser)."""
    return page.evaluate(
        """sources => Object.fromEntries(Object.entries(sources).map(([name, text]) => {
        const errors = [];
        NudgeEditor.parser.parse(text).iterate({enter(node) { if (node.type.isError) errors.push(node.from); }});
        return [name, errors];
    }))""",
        sources,
    )


def test_every_program_lark_accepts_parses_without_error_nodes(editor):
    sources = nudge_sources() | {f"corner {i}": text for i, text in enumerate(CORNERS)}
    valid = {name: text for name, text in sources.items() if dsl.parse(text).ok}
    invalid = {name: text for name, text in sources.items() if not dsl.parse(text).ok}
    assert len(valid) >= 40 and set(CORNERS) <= set(valid.values())
    assert {name: errors for name, errors in lezer_errors(editor, valid).items() if errors} == {}
    # and the parser is no sponge: each file lark rejects has an error node
    assert invalid and all(lezer_errors(editor, invalid).values())


def test_random_programs_from_the_formatter_parse_without_error_nodes(editor):
    programs: list[str] = []

    @settings(max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(strategies.program)
    def collect(program):
        text = dsl.format_program(program)
        programs.append(text)
        programs.append(re.sub(r"^[ \t]+", "", text, flags=re.M))  # indentation is free

    collect()
    sources = {str(i): text for i, text in enumerate(programs) if dsl.parse(text).ok}
    assert len(sources) >= 200
    failures = {name: sources[name] for name, errors in lezer_errors(editor, sources).items() if errors}
    assert failures == {}


# ---- the editor ----------------------------------------------------------------------------


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


def test_a_typo_is_marked_where_the_server_says_with_message_hint_and_a_one_click_fix(editor, endpoints):
    def checker(body):
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
                    "message": 'unknown step "sned" — did you mean "send"?',
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

    endpoints.validate = checker
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

    tooltip = problem_tooltip(
        editor, mark, 'unknown step "sned" — did you mean "send"?', "steps are if, send, tag, wait"
    )
    shot(editor, "editor-diagnostic")
    tooltip.get_by_role("button", name='Change to "send"').click()
    assert "  send sms reminder\n" in doc(editor) and "sned" not in doc(editor)
    assert editor.locator("#source").input_value() == doc(editor)
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
