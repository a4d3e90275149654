"""Hostile input on the signed-in pages: ids no database holds in the URL, version numbers past any integer column,
and NUL characters (PostgreSQL refuses them in text) in the fields that are stored — a clear 400, 404 or 422, never a
500 and never half a change. (The one request-wide NUL check itself: test_admin_nul_guard.py.)"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from server import instance_settings
from server.db import get_session
from server.models import ApiKey, BroadcastRecord, Form, Rule, RuleTest, Segment

from ..helpers import load_rules, signed_in
from .crm_helpers import post

HUGE = "99999999999999999999"  # more than any integer column holds (SQLite's and PostgreSQL's bigint)


def _rule_id(app) -> int:
    load_rules(app)
    with app.app_context():
        return get_session().scalar(select(Rule.id))


def _count(app, model) -> int:
    with app.app_context():
        return get_session().scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin/users/{huge}"),
        ("POST", "/admin/users/{huge}/role"),
        ("POST", "/admin/users/{huge}/disable"),
        ("GET", "/admin/rules/{huge}"),
        ("GET", "/admin/rules/{huge}/diff"),
        ("POST", "/admin/rules/{huge}/pause"),
        ("POST", "/admin/rules/{rule}/tests/{huge}/delete"),
    ],
)
def test_an_id_past_any_integer_column_in_the_url_is_not_found(app, method, path):
    admin = signed_in(app, "admin")
    url = path.format(huge=HUGE, rule=_rule_id(app))
    response = admin.get(url) if method == "GET" else post(admin, url, role="viewer")
    assert response.status_code == 404, response.get_data(as_text=True)[:500]
    assert "There is no" in response.get_data(as_text=True) or "has no test case" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "query", ["?version={n}", "?version=-{n}", "/diff?old={n}", "/diff?new=-{n}", "/activate?version={n}"]
)
def test_a_rule_version_past_any_integer_column_is_not_found(app, query):
    admin = signed_in(app, "admin")
    response = admin.get(f"/admin/rules/{_rule_id(app)}" + query.format(n=HUGE))
    assert response.status_code == 404, response.get_data(as_text=True)[:500]
    assert "has no version" in response.get_data(as_text=True)


def test_an_api_key_named_with_a_nul_is_refused_and_not_created(app):
    admin = signed_in(app, "admin")
    response = post(admin, "/admin/apikeys/", name="ci\x00bot", scope="ingest", expires="90d")
    assert response.status_code == 400, response.get_data(as_text=True)[:500]
    assert "NUL character" in response.get_data(as_text=True)
    assert _count(app, ApiKey) == 0


def test_revoking_an_api_key_whose_prefix_holds_a_nul_is_not_found(app):
    admin = signed_in(app, "admin")
    response = post(admin, "/admin/apikeys/ab%00cd/revoke")
    assert response.status_code == 404, response.get_data(as_text=True)[:500]


def _segment(app) -> None:
    with app.app_context():
        get_session().add(Segment(name="vips", condition='tag == "vip"'))
        get_session().commit()


@pytest.mark.parametrize(
    "field", [{"segment": "vips\x00"}, {"name": "Spring\x00sale"}], ids=["nul-segment", "nul-name"]
)
def test_a_broadcast_with_a_nul_in_its_segment_or_name_is_refused_and_not_created(app, field):
    _segment(app)
    editor = signed_in(app, "editor")
    form = {"name": "Spring", "template": "email:welcome", "segment": "vips", "when": "now", **field}
    response = post(editor, "/admin/broadcasts/new", **form)
    assert response.status_code == 400, response.get_data(as_text=True)[:500]
    assert _count(app, BroadcastRecord) == 0


def test_the_audience_of_a_segment_named_with_a_nul_is_no_count(app):
    _segment(app)
    editor = signed_in(app, "editor")
    response = post(editor, "/admin/broadcasts/audience", hx=True, template="email:welcome", segment="vips\x00")
    assert response.status_code == 400, response.get_data(as_text=True)[:500]
    assert "audience-count" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/admin/settings/", "s-DEFAULT_TIMEZONE"),
        ("/admin/channels/email", "s-DKIM_DOMAIN"),
        ("/admin/channels/email", "s-EMAIL_WEBHOOK_SECRET"),
        ("/admin/channels/sms", "s-SMS_HELP_TEXT"),
    ],
)
def test_a_setting_holding_a_nul_is_refused_and_nothing_is_saved(app, url, field):
    admin = signed_in(app, "admin")
    response = post(admin, url, **{field: "a\x00b"})
    assert response.status_code == 400, response.get_data(as_text=True)[:500]
    assert "NUL character" in response.get_data(as_text=True)
    with app.app_context():
        assert instance_settings.stored_values(get_session()) == {}


def _form_row(app) -> int:
    with app.app_context():
        row = Form(slug="news", name="News", channel="email", wording="Yes.", double_opt_in=True, fields=[], tags=[])
        get_session().add(row)
        get_session().commit()
        return row.id


@pytest.mark.parametrize("field", ["name", "tags", "redirect_url", "confirm_template"])
def test_a_sign_up_form_saved_with_a_nul_is_refused_and_left_unchanged(app, field):
    form_id = _form_row(app)
    editor = signed_in(app, "editor")
    form = {
        "name": "News",
        "channel": "email",
        "wording": "Yes.",
        "double_opt_in": "on",
        "tags": "web",
        "redirect_url": "https://example.com/thanks",
        "confirm_template": "confirm_subscription",
    }
    form[field] = form[field] + "\x00"
    response = post(editor, f"/admin/forms/{form_id}", **form)
    assert response.status_code == 400, response.get_data(as_text=True)[:500]
    assert "NUL character" in response.get_data(as_text=True)
    with app.app_context():
        row = get_session().get(Form, form_id)
        assert (row.tags, row.redirect_url) == ([], None)


def test_a_segment_described_with_a_nul_is_refused_and_left_unchanged(app):
    _segment(app)
    editor = signed_in(app, "editor")
    with app.app_context():
        segment_id = get_session().scalar(select(Segment.id))
    response = post(editor, f"/admin/segments/{segment_id}", condition='tag == "vip"', description="VIPs\x00")
    assert response.status_code == 400, response.get_data(as_text=True)[:500]
    assert "NUL character" in response.get_data(as_text=True)
    with app.app_context():
        assert get_session().get(Segment, segment_id).description in ("", None)


def test_messages_filtered_by_a_channel_holding_a_nul_is_a_bad_filter(app):
    admin = signed_in(app, "admin")
    listed = admin.get("/admin/messages/?channel=email%00")
    assert listed.status_code == 400, listed.get_data(as_text=True)[:500]
    assert "NUL character" in listed.get_data(as_text=True)
    resent = post(admin, "/admin/messages/resend", channel="email\x00", one="1")
    assert resent.status_code == 400, resent.get_data(as_text=True)[:500]


def test_a_rule_test_case_named_with_a_nul_is_not_kept(app):
    editor = signed_in(app, "editor")
    response = post(editor, f"/admin/rules/{_rule_id(app)}/tests", hx=True, case_name="VIP\x00")
    assert response.status_code == 400, response.get_data(as_text=True)[:500]
    assert "NUL character" in response.headers.get("HX-Trigger", "")
    assert _count(app, RuleTest) == 0
