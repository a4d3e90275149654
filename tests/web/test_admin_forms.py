"""The Forms area through the test client: create and edit forms, the embed code, submissions (pending or
confirmed), the wording each sign-up agreed to kept when the form's changes — roles, CSRF, escaping, audit rows."""

from __future__ import annotations

import html
import re

from sqlalchemy import select

from server.db import get_session
from server.forms import snippet_html
from server.models import Consent, Contact, Form, FormSubmission, Message

from ..helpers import signed_in
from .crm_helpers import BREAKOUT, SCRIPT, audited, escaped, page_flash, post

OLD = "I want the newsletter."
NEW = "I want the newsletter and the offers."


def _form_id(app, slug: str) -> int | None:
    with app.app_context():
        return get_session().scalar(select(Form.id).where(Form.slug == slug))


def _create(client, **overrides):
    form = {
        "slug": "news",
        "name": "Newsletter",
        "channel": "email",
        "wording": OLD,
        "double_opt_in": "on",
        "fields": ["first_name"],
        "tags": "newsletter, web",
        "redirect_url": "",
        "confirm_template": "confirm_subscription",
        **overrides,
    }
    return post(client, "/admin/forms/new", **form)


def test_an_editor_creates_a_form_whose_public_page_and_embed_code_work(app):
    editor = signed_in(app, "editor")
    assert editor.get("/admin/forms/new").status_code == 200
    response = _create(editor)
    assert response.status_code == 302, response.get_data(as_text=True)
    form_id = _form_id(app, "news")
    assert response.headers["Location"].endswith(f"/admin/forms/{form_id}")
    with app.app_context():
        row = get_session().get(Form, form_id)
        assert (row.wording, row.double_opt_in, row.fields, row.tags) == (
            OLD,
            True,
            ["first_name"],
            ["newsletter", "web"],
        )
    page = editor.get(f"/admin/forms/{form_id}").get_data(as_text=True)
    assert "Form &#39;news&#39; is saved: people sign up at /f/news." in page_flash(page)
    embed = html.unescape(re.search(r'<textarea id="form-embed"[^>]*>(.*?)</textarea>', page, re.S).group(1))
    with app.test_request_context():
        assert embed == snippet_html(get_session().get(Form, form_id))  # the snippet the API and docs give
    assert f'action="{app.config["BASE_URL"]}/f/news"' in embed
    assert 'data-copy="form-embed"' in page
    assert editor.get("/f/news").status_code == 200
    [entry] = audited(app, "form.created")
    assert entry.target_id == "news"
    listing = editor.get("/admin/forms/").get_data(as_text=True)
    assert f'href="/admin/forms/{form_id}">news</a>' in listing


def test_a_viewer_reads_forms_and_submissions_but_changes_nothing(app):
    _create(signed_in(app, "editor"))
    form_id = _form_id(app, "news")
    viewer = signed_in(app, "viewer")
    page = viewer.get(f"/admin/forms/{form_id}").get_data(as_text=True)
    assert "Save form" not in page and 'id="form-settings"' not in page and "Embed code" in page
    assert "New form" not in viewer.get("/admin/forms/").get_data(as_text=True)
    assert viewer.get("/admin/forms/new").status_code == 403
    assert _create(viewer, slug="mine").status_code == 403
    assert (
        post(viewer, f"/admin/forms/{form_id}", channel="email", wording="x", confirm_template="c").status_code == 403
    )
    assert _form_id(app, "mine") is None
    admin = signed_in(app, "admin")
    assert _create(admin, slug="admins").status_code == 302


def test_changes_need_the_csrf_token(app):
    editor = signed_in(app, "editor")
    assert (
        post(editor, "/admin/forms/new", csrf=False, slug="news", channel="email", confirm_template="c").status_code
        == 400
    )
    assert _form_id(app, "news") is None


def test_bad_input_is_refused_with_clear_errors_and_nothing_saved(app):
    editor = signed_in(app, "editor")
    response = _create(
        editor,
        slug="Bad Slug",
        channel="pigeon",
        fields=["shoe_size"],
        redirect_url="javascript:alert(1)",
        confirm_template="",
    )
    text = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "A slug is 1 to 64 lowercase letters" in text
    assert "Choose one of the installed channels" in text
    assert "&#39;shoe_size&#39; is neither a contact attribute nor a custom field" in text
    assert "give an http(s):// address" in text
    assert "Name the template that mails the confirmation link" in text
    assert _form_id(app, "Bad Slug") is None
    _create(editor)
    again = _create(editor)
    assert again.status_code == 422 and "A form &#39;news&#39; exists already" in again.get_data(as_text=True)


def test_a_double_opt_in_form_needs_a_confirmation_template_that_exists(app):
    """Saved with a template nobody made, every sign-up's confirmation failed to send: nobody could confirm."""
    editor = signed_in(app, "editor")
    response = _create(editor, confirm_template="confirm_signup")
    assert response.status_code == 422
    assert "There is no email template named &#39;confirm_signup&#39;" in response.get_data(as_text=True)
    assert _form_id(app, "news") is None
    assert _create(editor, confirm_template="confirm_signup", double_opt_in="").status_code == 302  # single opt-in


def test_hostile_values_are_escaped_on_every_page(app):
    editor = signed_in(app, "editor")
    assert _create(editor, name=SCRIPT, wording=BREAKOUT, tags=SCRIPT).status_code == 302
    form_id = _form_id(app, "news")
    for client in (editor, signed_in(app, "viewer")):
        escaped(client.get(f"/admin/forms/{form_id}").get_data(as_text=True), SCRIPT, BREAKOUT)
        escaped(client.get("/admin/forms/").get_data(as_text=True), SCRIPT)


def _submit(app, email: str) -> None:
    public = app.test_client()
    assert public.post("/f/news", data={"email": email, "first_name": SCRIPT, "consent": "yes"}).status_code == 303


def _confirm(app, email: str) -> None:
    with app.app_context():
        contact_id = get_session().scalar(select(Contact.id).where(Contact.email == email))
        url = get_session().scalar(select(Message).where(Message.contact_id == contact_id)).data["confirm_url"]
    assert app.test_client().post(re.sub(r"^https?://[^/]+", "", url)).status_code == 200


def test_submissions_are_listed_pending_then_confirmed_and_keep_the_wording_they_agreed_to(app):
    editor = signed_in(app, "editor")
    _create(editor)
    form_id = _form_id(app, "news")
    _submit(app, "first@example.com")
    # the wording changes while the first sign-up waits for its confirmation
    response = post(
        editor,
        f"/admin/forms/{form_id}",
        name="Newsletter",
        channel="email",
        wording=NEW,
        double_opt_in="on",
        fields=["first_name"],
        tags="newsletter",
        confirm_template="confirm_subscription",
    )
    assert response.status_code == 302
    flash = page_flash(editor.get(f"/admin/forms/{form_id}").get_data(as_text=True))
    assert "Earlier sign-ups keep the wording they agreed to" in flash
    [updated] = audited(app, "form.updated")
    assert "wording" in updated.detail["changed"]
    _submit(app, "second@example.com")
    page = editor.get(f"/admin/forms/{form_id}").get_data(as_text=True)
    rows = re.findall(r'<tr id="submission-(\d+)">(.*?)</tr>', page, re.S)
    assert len(rows) == 2 and all("status-pending" in r[1] for r in rows)
    assert "second@example.com" in rows[0][1] and "first@example.com" in rows[1][1]  # newest first
    _confirm(app, "first@example.com")
    _confirm(app, "second@example.com")
    with app.app_context():
        session = get_session()
        by_email = {session.get(Contact, c.contact_id).email: c.wording for c in session.scalars(select(Consent))}
        assert by_email == {"first@example.com": OLD, "second@example.com": NEW}
        assert all(s.confirmed_at is not None for s in session.scalars(select(FormSubmission)))
    page = signed_in(app, "viewer").get(f"/admin/forms/{form_id}").get_data(as_text=True)
    rows = re.findall(r'<tr id="submission-(\d+)">(.*?)</tr>', page, re.S)
    assert len(rows) == 2 and all("status-confirmed" in r[1] for r in rows)
    assert re.search(r'<a href="/admin/contacts/\d+">#\d+ second@example.com</a>', page)
    assert "<script>alert" not in page  # the first name is not shown; nothing unescaped is


def test_submissions_are_paged_by_keyset(app):
    editor = signed_in(app, "editor")
    _create(editor, double_opt_in="")
    form_id = _form_id(app, "news")
    with app.app_context():
        session = get_session()
        for n in range(55):
            contact = Contact(email=f"p{n}@example.com")
            session.add(contact)
            session.flush()
            session.add(FormSubmission(form_id=form_id, contact_id=contact.id, wording=OLD))
        session.commit()
    first = editor.get(f"/admin/forms/{form_id}").get_data(as_text=True)
    assert len(re.findall(r'<tr id="submission-', first)) == 50
    after = re.search(r'href="/admin/forms/\d+\?after=([^"#]+)#submissions-head" rel="next"', first).group(1)
    second = editor.get(f"/admin/forms/{form_id}?after={after}").get_data(as_text=True)
    assert len(re.findall(r'<tr id="submission-', second)) == 5 and 'rel="next"' not in second
    assert editor.get(f"/admin/forms/{form_id}?after=forged").status_code == 400


def test_the_name_field_says_truly_that_people_see_it_as_the_public_pages_heading(app):
    """The form's name is the heading of /f/<slug>: the field's hint must not tell the editor it is never shown."""
    editor = signed_in(app, "editor")
    assert _create(editor, name="Spring sale").status_code == 302
    public = editor.get("/f/news").get_data(as_text=True)
    assert "<h1>Spring sale</h1>" in public
    page = editor.get(f"/admin/forms/{_form_id(app, 'news')}").get_data(as_text=True)
    hint = html.unescape(page.split('id="f-name-hint">')[1].split("</p>")[0])
    assert "not shown" not in hint and "heading of the public page" in hint
