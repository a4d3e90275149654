"""The Templates area through the test client: each channel's templates with their last change and the rules that
send them, the editor showing the parts the channel declares (a third-party channel's too), validation in the
renderer's sandbox with errors at their line, the preview for a chosen or the sample contact, the channel's facts
(an SMS's segments), test sends through the real channel, delete refused while a rule sends the template — roles,
CSRF, escaping."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from server.db import get_session
from server.models import Contact, Form, Template
from server.plugins import DEFAULT_PLUGINS

from ..helpers import load_rules, signed_in
from .crm_helpers import BREAKOUT, SCRIPT, audited, escaped, flash_of, page_flash, post

WELCOME = {
    "part-subject": "Welcome, {{ contact.first_name }}",
    "part-html": "<p>Hi {{ contact.first_name }}!</p>",
    "part-txt": "Hi {{ contact.first_name }}!",
}
RULES = """rule "Onboarding"
when form.submitted then
  send email welcome
end
"""


def _create(client, channel="email", name="welcome", **parts):
    return post(client, "/admin/templates/new", channel=channel, name=name, **(parts or WELCOME))


def _template(app, name="welcome", channel="email"):
    with app.app_context():
        row = get_session().scalar(select(Template).where(Template.channel == channel, Template.name == name))
        get_session().expunge_all()
        return row


def _count(app) -> int:
    with app.app_context():
        return get_session().scalar(select(func.count()).select_from(Template))


def test_an_editor_creates_a_template_and_the_list_shows_who_changed_it_and_which_rules_send_it(app):
    editor = signed_in(app, "editor")
    response = _create(editor)
    row = _template(app)
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/admin/templates/{row.id}")
    assert row.parts == {k[5:]: v for k, v in WELCOME.items()}
    assert [a.target_id for a in audited(app, "template.created")] == [str(row.id)]
    load_rules(app, RULES)
    listing = editor.get("/admin/templates/").get_data(as_text=True)
    assert "Welcome" not in page_flash(listing)
    line = re.search(rf'<tr id="template-{row.id}">(.*?)</tr>', listing, re.S).group(1)
    assert ">welcome</a>" in line and "<td>email</td>" in line
    assert f"by {editor.email}" in line and ">Onboarding</a>" in line
    assert '<a href="/admin/templates/" aria-current="page">Templates</a>' in listing  # in the navigation
    page = editor.get(f"/admin/templates/{row.id}").get_data(as_text=True)
    assert re.search(r'id="template-uses">\s*<a href="/admin/rules/\d+">Onboarding</a>', page)
    changed = post(editor, f"/admin/templates/{row.id}", **{**WELCOME, "part-txt": "Hello again"})
    assert changed.status_code == 302 and _template(app).parts["txt"] == "Hello again"
    assert len(audited(app, "template.updated")) == 1


def test_the_editor_shows_the_parts_each_channel_declares(app):
    editor = signed_in(app, "editor")
    email = editor.get("/admin/templates/new?channel=email").get_data(as_text=True)
    assert re.findall(r'<textarea id="part-(\w+)"', email) == ["subject", "html", "txt"]
    sms = editor.get("/admin/templates/new?channel=sms").get_data(as_text=True)
    assert re.findall(r'<textarea id="part-(\w+)"', sms) == ["txt"]
    assert editor.get("/admin/templates/new?channel=webhook").status_code == 404  # named endpoints, no templates
    assert editor.get("/admin/templates/new?channel=fax").status_code == 404
    choose = editor.get("/admin/templates/new").get_data(as_text=True)
    assert '<a href="/admin/templates/new?channel=push">' not in choose
    assert '<a href="/admin/templates/new?channel=sms">sms</a> — parts: txt' in choose and "webhook" not in choose


class TestAThirdPartyChannel:
    @pytest.fixture
    def config(self, config):
        """The built-in plugins and the example push package (examples/nudge-example-push)."""
        return {**config, "PLUGINS": ",".join((*DEFAULT_PLUGINS, "nudge_example_push"))}

    def test_gets_an_editor_of_its_own_parts(self, app):
        editor = signed_in(app, "editor")
        listing = editor.get("/admin/templates/").get_data(as_text=True)
        assert 'href="/admin/templates/new?channel=push"' in listing
        choose = editor.get("/admin/templates/new").get_data(as_text=True)
        assert '<a href="/admin/templates/new?channel=push">push</a> — parts: title, txt' in choose
        page = editor.get("/admin/templates/new?channel=push").get_data(as_text=True)
        assert re.findall(r'<textarea id="part-(\w+)"', page) == ["title", "txt"]
        missing = _create(editor, "push", "nudge", **{"part-title": "Come back"})
        assert missing.status_code == 422
        assert "a push template needs a txt" in page_flash(missing.get_data(as_text=True))
        saved = _create(editor, "push", "nudge", **{"part-title": "Hi {{ contact.first_name }}", "part-txt": "News"})
        assert saved.status_code == 302 and _template(app, "nudge", "push").parts == {
            "title": "Hi {{ contact.first_name }}",
            "txt": "News",
        }
        shown = post(
            editor, "/admin/templates/preview", hx=True, channel="push", **{"part-title": "Hi {{ contact.first_name }}"}
        ).get_data(as_text=True)
        assert '<pre class="preview-text" data-part="title">Hi Ana</pre>' in shown


def test_a_syntax_error_is_shown_at_its_line_and_nothing_is_saved(app):
    editor = signed_in(app, "editor")
    response = _create(editor, **{**WELCOME, "part-txt": "Hello\n\n{{ contact.first_name | upper }"})
    assert response.status_code == 422 and _count(app) == 0
    html = response.get_data(as_text=True)
    assert "Not saved: 1 problem(s); the first, in txt, line 3: unexpected &#39;}&#39;" in page_flash(html)
    assert re.search(r'<ul class="field-error" id="part-txt-errors">\s*<li>Line 3: unexpected', html)
    assert 'id="part-txt"' in html and 'aria-invalid="true" data-problems=\'[{"line": 3' in html
    assert "Hello\n\n{{ contact.first_name | upper }</textarea>" in html  # the text typed is kept
    unknown = _create(editor, **{**WELCOME, "part-html": "<p>\n{{ contcat.first_name }}</p>"})
    assert unknown.status_code == 422 and _count(app) == 0
    assert "Line 2: unknown name &#34;contcat&#34; — did you mean &#34;contact&#34;?" in unknown.get_data(as_text=True)
    unsafe = _create(editor, **{**WELCOME, "part-txt": "{{ contact.__class__.__mro__ }}"})
    assert unsafe.status_code == 422 and _count(app) == 0
    named = _create(editor, name="no spaces allowed")
    assert named.status_code == 422 and "a name is letters, digits" in named.get_data(as_text=True)
    assert _create(editor).status_code == 302
    again = _create(editor)
    assert again.status_code == 422 and "the email channel has a template named &#39;welcome&#39;" in page_flash(
        again.get_data(as_text=True)
    )


def test_delete_is_refused_while_a_rule_sends_the_template_naming_the_rule(app):
    editor = signed_in(app, "editor")
    _create(editor)
    _create(editor, name="spare")
    load_rules(app, RULES)
    row, spare = _template(app), _template(app, "spare")
    refused = post(editor, f"/admin/templates/{row.id}/delete")
    assert refused.status_code == 409 and _template(app) is not None
    assert "Not deleted: the rule(s) &#39;Onboarding&#39; send the email template &#39;welcome&#39;" in page_flash(
        refused.get_data(as_text=True)
    )
    deleted = post(editor, f"/admin/templates/{spare.id}/delete")
    assert deleted.status_code == 302 and _template(app, "spare") is None
    assert [a.target_id for a in audited(app, "template.deleted")] == [str(spare.id)]


def test_delete_is_refused_while_a_double_opt_in_form_mails_its_confirmation_with_it(app):
    editor = signed_in(app, "editor")
    _create(editor, name="double_check")
    with app.app_context():
        for slug, double in (("news", True), ("single", False)):
            get_session().add(
                Form(slug=slug, name=slug, channel="email", wording="Yes.", double_opt_in=double, fields=[], tags=[])
            )
            get_session().scalar(select(Form).where(Form.slug == slug)).confirm_template = "double_check"
        get_session().commit()
    row = _template(app, "double_check")
    refused = post(editor, f"/admin/templates/{row.id}/delete")
    assert refused.status_code == 409 and _template(app, "double_check") is not None
    assert (
        "Not deleted: the double opt-in form(s) &#39;news&#39; mail their confirmation with the email template "
        "&#39;double_check&#39;. Choose another confirmation template in Forms first."
    ) in page_flash(refused.get_data(as_text=True))
    assert audited(app, "template.deleted") == []


def test_a_save_dropping_the_confirm_url_a_double_opt_in_form_needs_is_refused(app):
    editor = signed_in(app, "editor")
    linked = {**WELCOME, "part-txt": "Please confirm: {{ confirm_url }}"}
    assert _create(editor, name="double_check", **linked).status_code == 302  # the link is a name templates see
    with app.app_context():
        get_session().add(
            Form(slug="news", name="news", channel="email", wording="Yes.", double_opt_in=True, fields=[], tags=[])
        )
        get_session().scalar(select(Form).where(Form.slug == "news")).confirm_template = "double_check"
        get_session().commit()
    row = _template(app, "double_check")
    refused = post(editor, f"/admin/templates/{row.id}", **WELCOME)
    assert refused.status_code == 422 and "keep {{ confirm_url }}" in page_flash(refused.get_data(as_text=True))
    assert _template(app, "double_check").parts["txt"] == "Please confirm: {{ confirm_url }}"
    assert post(editor, f"/admin/templates/{row.id}", **linked).status_code == 302


def test_a_draft_that_sends_the_template_counts_as_a_use(app):
    editor = signed_in(app, "editor")
    _create(editor)
    load_rules(app, 'rule "Onboarding"\nwhen form.submitted then\n  tag "new"\nend\n')
    with app.app_context():
        from server.models import Rule

        rule_id = get_session().scalar(select(Rule.id))
    saved = post(editor, f"/admin/rules/{rule_id}", source=RULES)
    assert saved.status_code == 302, saved.get_data(as_text=True)
    listing = editor.get("/admin/templates/").get_data(as_text=True)
    assert re.search(r">Onboarding</a> <span class=\"badge status-draft\">draft</span>", listing)
    refused = post(editor, f"/admin/templates/{_template(app).id}/delete")
    assert refused.status_code == 409 and "Onboarding (draft)" in page_flash(refused.get_data(as_text=True))


def test_the_preview_renders_for_a_chosen_contact_with_hostile_fields_escaped(app):
    with app.app_context():
        session = get_session()
        session.add(Contact(email="mallory@example.com", first_name=SCRIPT, last_name=BREAKOUT, fields={}))
        session.commit()
    editor = signed_in(app, "editor")
    form = {**WELCOME, "part-txt": "Dear {{ contact.first_name }} {{ contact.last_name }}"}
    url = "/admin/templates/preview"
    shown = post(editor, url, hx=True, channel="email", contact_email="MALLORY@example.com", **form)
    assert shown.status_code == 200
    html = shown.get_data(as_text=True)
    assert "Rendered for contact #" in html and "(mallory@example.com)" in html
    escaped(html, f"Dear {SCRIPT} {BREAKOUT}", f"Welcome, {SCRIPT}")
    # the html part was escaped by the template's autoescape, then again as the frame's srcdoc attribute
    frame = re.search(r'<iframe class="preview-html" sandbox="" srcdoc="([^"]*)"', html).group(1)
    assert frame == "&lt;p&gt;Hi &amp;lt;script&amp;gt;alert(1)&amp;lt;/script&amp;gt;!&lt;/p&gt;"
    sample = post(editor, "/admin/templates/preview", hx=True, channel="email", contact_email="", **form)
    assert "the sample contact" in sample.get_data(as_text=True) and "Dear Ana Example" in sample.get_data(as_text=True)
    nobody = post(editor, "/admin/templates/preview", hx=True, channel="email", contact_email="no@x.example", **form)
    assert "No contact has that email; the preview shows the sample contact." in nobody.get_data(as_text=True)
    broken = post(editor, "/admin/templates/preview", hx=True, channel="email", **{"part-txt": "a\n{% if %}"})
    assert "txt, line 2:" in broken.get_data(as_text=True)
    options = post(editor, "/admin/templates/contacts", hx=True, contact_email="mall").get_data(as_text=True)
    assert '<option value="mallory@example.com">' in options and "<script>alert" not in options


def test_an_sms_preview_shows_its_encoding_and_segments(app):
    editor = signed_in(app, "editor")

    def facts(text):
        html = post(editor, "/admin/templates/preview", hx=True, channel="sms", **{"part-txt": text}).get_data(
            as_text=True
        )
        return dict(re.findall(r"<dt>(\w+)</dt><dd>([^<]*)</dd>", html))

    assert facts("{{ 'a' * 160 }}") == {"Encoding": "GSM-7", "Length": "160 septets", "Segments": "1"}
    assert facts("{{ 'a' * 161 }}")["Segments"] == "2"
    assert facts("{{ '€' * 80 }}") == {"Encoding": "GSM-7", "Length": "160 septets", "Segments": "1"}  # 2 septets each
    ucs2 = {"Encoding": "UCS-2", "Length": "10 UTF-16 units", "Segments": "1"}
    assert facts("Zażółć {{ contact.first_name }}") == ucs2
    assert facts("{{ 'ł' * 71 }}")["Segments"] == "2"


def test_a_test_send_goes_through_the_channel_marked_as_a_test_audited_and_rate_limited(app, smtp_server, monkeypatch):
    editor = signed_in(app, "editor")
    _create(editor)
    row = _template(app)
    edited = {**WELCOME, "part-subject": "Edited {{ contact.first_name }}"}
    sent = post(editor, f"/admin/templates/{row.id}/test", hx=True, to="tester@example.com", **edited)
    assert sent.status_code == 204 and flash_of(sent)[-1] == "Sent a test of 'welcome' to tester@example.com."
    raw = smtp_server.wait_for(1) and smtp_server.raw[0]
    assert b"\r\nSubject: [Test] Edited Ana\r\n" in raw and b"\r\nX-Nudge-Test: yes\r\n" in raw
    assert b"\r\nTo: tester@example.com\r\n" in raw and b"List-Unsubscribe" not in raw
    entries = audited(app, "template.test_sent")
    assert [e.target_id for e in entries] == [str(row.id)] and "tester" not in str(entries[0].detail)
    plain = post(editor, f"/admin/templates/{row.id}/test", to="not an address")  # a plain form post, no JS
    assert plain.status_code == 422
    assert "&#39;not an address&#39; is no address of the email channel" in page_flash(plain.get_data(as_text=True))
    broken = {**WELCOME, "part-txt": "{{ x"}
    bad = post(editor, f"/admin/templates/{row.id}/test", hx=True, to="t@example.com", **broken)
    assert bad.status_code == 422 and flash_of(bad)[0].startswith("Not sent: the template has a problem: txt:1")
    from server.web.templating import preview

    monkeypatch.setattr(preview, "TEST_SENDS_PER_HOUR", 2)
    assert post(editor, f"/admin/templates/{row.id}/test", hx=True, to="tester@example.com").status_code == 204
    limited = post(editor, f"/admin/templates/{row.id}/test", hx=True, to="tester@example.com")
    assert limited.status_code == 429 and "at most 2 test sends an hour" in flash_of(limited)[0]
    assert len(smtp_server.wait_for(2)) == 2


def test_viewers_read_templates_and_change_nothing(app):
    editor = signed_in(app, "editor")
    _create(editor)
    row = _template(app)
    viewer = signed_in(app, "viewer")
    listing = viewer.get("/admin/templates/")
    assert listing.status_code == 200 and "New email template" not in listing.get_data(as_text=True)
    page = viewer.get(f"/admin/templates/{row.id}").get_data(as_text=True)
    assert 'id="part-txt"' in page and "readonly" in page.split('id="part-txt"')[1].split(">")[0]
    assert "Delete template" not in page and "Send test" not in page and ">Save<" not in page and "hx-post" not in page
    assert "Hi Ana!" in page  # the preview, for the sample contact
    assert viewer.get("/admin/templates/new?channel=email").status_code == 403
    for url, form in (
        ("/admin/templates/new", {"channel": "email", "name": "x", **WELCOME}),
        (f"/admin/templates/{row.id}", WELCOME),
        (f"/admin/templates/{row.id}/delete", {}),
        (f"/admin/templates/{row.id}/test", {"to": "v@example.com"}),
        ("/admin/templates/preview", {"channel": "email", **WELCOME}),
        ("/admin/templates/contacts", {"contact_email": "ma"}),
    ):
        assert post(viewer, url, **form).status_code == 403, url
        assert post(viewer, url, hx=True, **form).status_code == 403, url
    admin = signed_in(app, "admin")
    assert _create(admin, name="by_admin").status_code == 302
    for url in (f"/admin/templates/{row.id}", f"/admin/templates/{row.id}/delete", "/admin/templates/new"):
        assert post(editor, url, csrf=False, channel="email", name="y", **WELCOME).status_code == 400, url
    assert _template(app) is not None and _count(app) == 2
    signed_out = app.test_client().get("/admin/templates/")
    assert signed_out.status_code == 302 and "/admin/login" in signed_out.headers["Location"]


def test_hostile_template_names_and_sources_are_escaped(app):
    editor = signed_in(app, "editor")
    assert _create(editor, name="x", **{**WELCOME, "part-txt": f"{SCRIPT} {BREAKOUT}"}).status_code == 302
    page = editor.get(f"/admin/templates/{_template(app, 'x').id}").get_data(as_text=True)
    escaped(page, f"{SCRIPT} {BREAKOUT}")
    refused = _create(editor, name=SCRIPT)
    assert refused.status_code == 422
    escaped(refused.get_data(as_text=True), SCRIPT)
