"""The rule editor on the real rules page completes what the instance's plugins bring: the example push package
(examples/nudge-example-push, installed with the test extras) declares the condition function ``email_domain``
and the event ``app.installed``; the editor offers them with the function's signature, and the checker accepts
the rule written with them."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from server.plugins import DEFAULT_PLUGINS

from .conftest import make_user, sign_in
from .editor_helpers import choose, completions, doc, type_text

RULE = "rule-source"


@pytest.fixture
def config(config):
    """The built-in plugins and the example push package, named as ``NUDGE_PLUGINS`` names them."""
    return {**config, "PLUGINS": ",".join((*DEFAULT_PLUGINS, "nudge_example_push"))}


def test_completion_offers_a_plugins_condition_function_with_its_signature(app, page):
    make_user(app, "ed@example.com", role="editor")
    sign_in(page, "ed@example.com")
    page.goto("/admin/rules/new")
    type_text(page, 'rule "Company app users"\nwhen app.inst', RULE)
    assert "app.installed" in completions(page, explicit=True)
    choose(page, "app.installed")
    offered = completions(page, " and email_d", explicit=True)
    assert offered[0] == "email_domain"
    expect(page.locator(".cm-tooltip-autocomplete li", has_text="email_domain")).to_contain_text(
        "email_domain(string) → string"
    )
    choose(page, "email_domain")
    page.keyboard.type('contact.email) == "example.com" then\ntag "company app"\nend')
    assert doc(page, RULE) == (
        'rule "Company app users"\nwhen app.installed and email_domain(contact.email) == '
        '"example.com" then\n  tag "company app"\nend'
    )
    page.get_by_role("button", name="Save draft").click()  # saving checks the text: a refused one says why
    page.get_by_role("status").get_by_text("Saved v1 of 'Company app users' as a draft").wait_for()
