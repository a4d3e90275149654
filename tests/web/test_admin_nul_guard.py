"""One check for every admin request: a NUL character (PostgreSQL refuses it in text) in a query or form value,
or in a field's name, is a 400 naming the field, before any page reads the request — nothing is written."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from server.db import get_session
from server.models import ApiKey, AuditEntry, Form, Segment, Template, User

from ..helpers import signed_in
from .crm_helpers import flash_of, post


def _counts(app) -> dict[str, int]:
    with app.app_context():
        return {
            model.__name__: get_session().scalar(select(func.count()).select_from(model))
            for model in (ApiKey, AuditEntry, Form, Segment, Template, User)
        }


@pytest.mark.parametrize(
    "url",
    [
        "/admin/?q=%00",
        "/admin/rules/?q=%00",
        "/admin/templates/?q=a%00b",
        "/admin/segments/?q=%00",
        "/admin/contacts/?by=name&q=ana%00",
        "/admin/audit/?actor=a%00b",
        "/admin/audit/?kind=rule%00",
        "/admin/contacts/?by=segment&q=%00",
        "/admin/messages/?channel=email%00",
        "/admin/tasks/?team=sales%00",
    ],
)
def test_a_query_value_holding_a_nul_is_a_bad_request_naming_the_field(app, url):
    admin = signed_in(app, "admin")
    response = admin.get(url)
    assert response.status_code == 400, response.get_data(as_text=True)[:500]
    text = response.get_data(as_text=True)
    field = url.split("?")[1].split("%00")[0].rsplit("&", 1)[-1].split("=")[0]
    assert f"The query parameter &#34;{field}&#34; holds a NUL character" in text, text[:800]
    assert "remove it" in text


def test_a_query_parameter_named_with_a_nul_is_a_bad_request(app):
    admin = signed_in(app, "admin")
    response = admin.get("/admin/rules/?st%00atus=")
    assert response.status_code == 400, response.get_data(as_text=True)[:500]
    assert "A query parameter&#39;s name holds a NUL character" in response.get_data(as_text=True)


SEGMENT = {"name": "vips", "condition": 'tag == "vip"', "description": "VIPs"}
FORM = {
    "slug": "news",
    "name": "News",
    "channel": "email",
    "wording": "Yes, send me news.",
    "tags": "web",
    "redirect_url": "",
    "confirm_template": "confirm_subscription",
}


@pytest.mark.parametrize(
    ("role", "url", "form", "field"),
    [
        ("admin", "/admin/apikeys/", {"name": "ci\x00bot", "scope": "ingest", "expires": "90d"}, "name"),
        ("admin", "/admin/users/new", {"email": "new\x00@example.com", "role": "viewer"}, "email"),
        ("editor", "/admin/segments/new", {**SEGMENT, "description": "VIPs\x00"}, "description"),
        ("editor", "/admin/forms/new", {**FORM, "wording": "Yes\x00"}, "wording"),
        (
            "editor",
            "/admin/templates/new",
            {"channel": "email", "name": "welcome", "part-subject": "Hi", "part-txt": "Hi\x00"},
            "part-txt",
        ),
        ("admin", "/admin/settings/", {"s-DEFAULT_TIMEZONE": "Europe/Berlin\x00"}, "s-DEFAULT_TIMEZONE"),
    ],
    ids=["apikey", "user", "segment", "form", "template", "settings"],
)
def test_a_form_value_holding_a_nul_is_a_bad_request_and_nothing_is_written(app, role, url, form, field):
    client = signed_in(app, role)
    before = _counts(app)
    response = post(client, url, **form)
    assert response.status_code == 400, response.get_data(as_text=True)[:500]
    text = response.get_data(as_text=True)
    assert f"The form field &#34;{field}&#34; holds a NUL character" in text, text[:800]
    assert "remove it and send the form again" in text
    assert _counts(app) == before


def test_a_form_field_named_with_a_nul_is_refused_and_nothing_is_written(app):
    editor = signed_in(app, "editor")
    before = _counts(app)
    response = post(editor, "/admin/segments/new", **SEGMENT, **{"note\x00": "x"})
    assert response.status_code == 400, response.get_data(as_text=True)[:500]
    assert "A form field&#39;s name holds a NUL character" in response.get_data(as_text=True)
    assert _counts(app) == before


def test_an_htmx_request_gets_the_refusal_in_the_flash_area(app):
    editor = signed_in(app, "editor")
    response = post(editor, "/admin/broadcasts/audience", hx=True, template="email:welcome", segment="vips\x00")
    assert response.status_code == 400
    assert flash_of(response) == [
        'The form field "segment" holds a NUL character, which Nudge cannot store or search for; '
        "remove it and send the form again."
    ]


def test_a_signed_out_request_is_sent_to_sign_in_first(app):
    response = app.test_client().get("/admin/rules/?q=%00")
    assert response.status_code == 302 and "/admin/login" in response.headers["Location"]


def test_nuls_and_lone_surrogates_are_unstorable_and_other_text_is_not():
    # a lone surrogate cannot reach a page through HTTP (werkzeug decodes with replacement), so the check is unit-tested
    from server.web.admin_input import unstorable

    assert unstorable("a\x00b") and unstorable("x\ud800y") and unstorable("\udfff")
    assert not unstorable("naïve ✓ 😀") and not unstorable("")
