"""DELETE /api/v1/templates/{id}: refused (409) while a double opt-in form mails its confirmation with the
template and no built-in of its name would take over — every sign-up's confirmation would fail to send."""

from __future__ import annotations

from sqlalchemy import select

from server.db import get_session
from server.models import Form, Template

CONFIRM = {"subject": "Confirm", "html": "<p>Please confirm.</p>", "txt": "Please confirm."}


def _form(app, slug, confirm_template, double_opt_in=True, channel="email"):
    with app.app_context():
        get_session().add(
            Form(
                slug=slug,
                name=slug.title(),
                channel=channel,
                wording="Yes.",
                double_opt_in=double_opt_in,
                fields=[],
                tags=[],
                confirm_template=confirm_template,
            )
        )
        get_session().commit()


def _exists(app, template_id) -> bool:
    with app.app_context():
        return get_session().scalar(select(Template.id).where(Template.id == template_id)) is not None


def test_deleting_a_double_opt_in_forms_confirmation_template_is_refused_naming_the_forms(app, api):
    made = api.post("/templates", json={"channel": "email", "name": "double_check", "parts": CONFIRM})
    assert made.status_code == 201, made.json
    _form(app, "news", "double_check")
    _form(app, "offers", "double_check")
    refused = api.delete(f"/templates/{made.json['id']}")
    assert refused.status_code == 409, refused.get_data(as_text=True)
    assert refused.json["detail"] == (
        "the double opt-in form(s) 'news', 'offers' mail their confirmation with the email template "
        "'double_check', so it cannot be deleted; change their confirmation template first (PATCH /forms/{slug})"
    )
    assert refused.json["forms"] == ["news", "offers"]
    assert _exists(app, made.json["id"])


def test_a_template_no_double_opt_in_form_needs_is_deleted(app, api):
    made = api.post("/templates", json={"channel": "email", "name": "double_check", "parts": CONFIRM})
    sms = api.post("/templates", json={"channel": "sms", "name": "other", "parts": {"txt": "Hi"}})
    _form(app, "single", "double_check", double_opt_in=False)  # sends no confirmation
    _form(app, "texts", "double_check", channel="sms")  # another channel's template of that name
    _form(app, "sms-news", "other", double_opt_in=False, channel="sms")
    assert api.delete(f"/templates/{made.json['id']}").status_code == 204
    assert not _exists(app, made.json["id"])
    assert api.delete(f"/templates/{sms.json['id']}").status_code == 204


def test_a_stored_template_shadowing_a_built_in_one_is_deleted_the_built_in_takes_over(app, api):
    made = api.post("/templates", json={"channel": "email", "name": "confirm_subscription", "parts": CONFIRM})
    assert made.status_code == 201, made.json
    _form(app, "news", "confirm_subscription")
    assert api.delete(f"/templates/{made.json['id']}").status_code == 204


def test_deleting_a_template_a_rule_sends_is_refused_naming_the_rules(app, api):
    """As the admin page refuses it: every send of it would fail."""
    made = api.post("/templates", json={"channel": "email", "name": "double_check", "parts": CONFIRM})
    api.post("/templates", json={"channel": "email", "name": "other", "parts": CONFIRM})
    rule = 'rule "Welcome"\nwhen form.submitted then\n  send email double_check\nend\n'
    assert api.put("/rules", json={"text": rule}).status_code == 200
    refused = api.delete(f"/templates/{made.json['id']}")
    assert refused.status_code == 409, refused.get_data(as_text=True)
    assert refused.json["rules"] == ["Welcome"] and "'Welcome'" in refused.json["detail"]
    assert _exists(app, made.json["id"])
    assert api.put("/rules", json={"text": rule.replace("double_check", "other")}).status_code == 200
    assert api.delete(f"/templates/{made.json['id']}").status_code == 204


def test_a_template_a_form_confirms_with_keeps_its_link_and_its_name(app, api):
    """Changing the template a double opt-in form mails its confirmation with: dropping ``{{ confirm_url }}`` (nobody
    could confirm) or renaming it (the form would find none) is refused; keeping the link is saved."""
    linked = {**CONFIRM, "txt": "Please confirm: {{ confirm_url }}"}
    made = api.post("/templates", json={"channel": "email", "name": "double_check", "parts": linked})
    assert made.status_code == 201, made.json
    _form(app, "news", "double_check")
    dropped = api.put(f"/templates/{made.json['id']}", json={"parts": CONFIRM})
    assert dropped.status_code == 422 and dropped.json["field"] == "parts"
    assert "'news'" in dropped.json["detail"] and "keep {{ confirm_url }}" in dropped.json["detail"]
    renamed = api.put(f"/templates/{made.json['id']}", json={"name": "renamed", "parts": linked})
    assert renamed.status_code == 409 and renamed.json["forms"] == ["news"]
    kept = {**linked, "html": '<p><a href="{{ confirm_url }}">Confirm</a></p>'}
    assert api.put(f"/templates/{made.json['id']}", json={"parts": kept}).status_code == 200
    with app.app_context():
        assert get_session().get(Template, made.json["id"]).parts == kept
