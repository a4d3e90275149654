"""The rule editor bundle in a real Chromium, under a strict CSP: the fixture page and the fake server behind it.

These are component tests of the bundle: a fixture page (tests/ui/fixtures/editor_page.html) loads the
committed bundle from the app's static route, and ``page.route`` answers the vocabulary, validate and
format URLs with fixed JSON in the documented contract (docs/admin-editor.md). The server endpoints
themselves are tested with the pages that use them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import expect

FIXTURE = Path(__file__).parents[1] / "fixtures" / "editor_page.html"
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
