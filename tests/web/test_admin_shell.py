"""The admin shell: one layout with navigation, the signed-in person and a flash area; htmx with CSRF;
a strict Content-Security-Policy; escaped output; the dashboard's figures."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from html.parser import HTMLParser

from server.auth import check_password
from server.db import get_session
from server.models import Message, Role, User, utcnow
from server.web.access import admin_blueprint, requires

from ..helpers import PASSWORD, make_user, signed_in
from .test_roles import admin_rules

NEW_PASSWORD = "a brand new passphrase 42"
HX = {"HX-Request": "true", "HX-Current-URL": "http://localhost/admin/account"}


def _flash_event(response) -> list[dict]:
    return json.loads(response.headers["HX-Trigger"])["nudge:flash"]["messages"]


def _admin_pages(app, client):
    for rule in admin_rules(app):
        if "GET" in rule.methods and not rule.arguments:
            response = client.get(rule.rule)
            if response.mimetype == "text/html":
                yield rule.rule, response


# -- the layout --------------------------------------------------------------------------------------------
def test_every_admin_page_has_the_layout_the_person_and_landmarks(app):
    client = signed_in(app, "admin", email="eve@example.com")
    pages = dict(_admin_pages(app, client))
    assert {"/admin/", "/admin/account", "/admin/users/", "/admin/users/new", "/admin/apikeys/"} <= set(pages)
    for url, response in pages.items():
        html = response.get_data(as_text=True)
        assert response.status_code == 200, url
        assert '<a class="skip-link" href="#main">' in html, url
        assert '<main id="main"' in html and '<nav class="mainnav" aria-label="Main">' in html, url
        assert "eve@example.com" in html and 'class="badge role-admin"' in html, url
        assert 'action="/admin/logout"' in html, url
        assert '<div id="flash-status" role="status">' in html and '<div id="flash-alert" role="alert">' in html, url
        assert '<script src="/static/dist/htmx.min.js" defer></script>' in html, url
        assert '<script src="/static/admin.js" defer></script>' in html, url
        assert f'hx-headers=\'{{"X-CSRF-Token": "{client.csrf}"}}\'' in html, url


def test_admin_pages_carry_a_strict_content_security_policy_and_nothing_inline(app):
    client = signed_in(app, "admin")
    anonymous = app.test_client()
    pages = [*_admin_pages(app, client), ("/admin/login", anonymous.get("/admin/login"))]
    for url, response in pages:
        policy = {d.strip().split(" ", 1)[0]: d.strip() for d in response.headers["Content-Security-Policy"].split(";")}
        assert policy["script-src"] == "script-src 'self'", url
        assert policy["style-src"] == "style-src 'self' 'unsafe-inline'", url  # CodeMirror injects its styles
        assert policy["object-src"] == "object-src 'none'" and policy["base-uri"] == "base-uri 'none'", url
        assert policy["form-action"] == "form-action 'self'", url
        assert policy["frame-ancestors"] == "frame-ancestors 'none'", url
        assert "unsafe-eval" not in response.headers["Content-Security-Policy"], url
        html = response.get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), f"inline script on {url}"
        assert not re.search(r"\son[a-z]+\s*=", html), f"inline event handler on {url}"
        assert not re.search(r"<style|\sstyle=|\shx-on", html), f"inline style or hx-on on {url}"
        config = json.loads(re.search(r'<meta name="htmx-config" content=\'([^\']+)\'>', html).group(1))
        assert config["allowEval"] is False and config["includeIndicatorStyles"] is False, url
    for asset in ("/static/dist/htmx.min.js", "/static/admin.js", "/static/admin.css"):
        with anonymous.get(asset) as response:
            assert response.status_code == 200, asset


def test_public_pages_keep_their_own_look_and_no_admin_policy(app, client):
    from .test_forms import make_form

    make_form(app)
    response = client.get("/f/newsletter")
    assert response.status_code == 200 and "<style>" in response.get_data(as_text=True)
    assert response.headers["Content-Security-Policy"] == "frame-ancestors 'none'"


# -- htmx and CSRF -------------------------------------------------------------------------------------------
def test_a_method_or_path_no_page_takes_is_a_405_or_404_not_a_csrf_refusal(app, client):
    response = client.put("/admin/account", data={"x": "1"})
    assert response.status_code == 405 and "did not come from this site" not in response.get_data(as_text=True)
    assert client.delete("/u/some-token").status_code == 405
    assert client.post("/admin/no-such-page", data={"x": "1"}).status_code == 404


def test_after_signing_out_in_another_tab_an_htmx_post_says_so_and_links_to_sign_in(app):
    client = signed_in(app, "editor", email="tab@example.com")
    stale = client.csrf  # the token the other tab's page still holds
    assert client.post("/admin/logout", data={"csrf_token": stale}).status_code == 302  # signed out in one tab
    refused = client.post("/admin/account", data={"current_password": PASSWORD}, headers={**HX, "X-CSRF-Token": stale})
    assert refused.status_code == 401
    [message] = _flash_event(refused)
    assert message["category"] == "error" and "signed out" in message["text"]
    assert "expired" not in message["text"] and "did not come from this site" not in message["text"]
    assert message["link"] == {"href": "/admin/login?next=/admin/account", "text": "Sign in again"}
    page = client.post("/admin/account", data={"csrf_token": stale, "current_password": PASSWORD})  # a plain form
    html = page.get_data(as_text=True)
    assert page.status_code == 401 and "signed out" in html
    assert 'href="/admin/login?next=/admin/account"' in html and "Sign in again" in html


def test_a_stale_form_of_a_signed_in_person_still_says_the_form_expired(app):
    client = signed_in(app, "editor", email="stale@example.com")
    refused = client.post("/admin/account", data={"csrf_token": "an old page's token"}, headers=HX)
    assert refused.status_code == 400
    [message] = _flash_event(refused)
    assert "form expired" in message["text"] and "signed out" not in message["text"] and "link" not in message
    # the sign-in form itself, its token gone with the session: reloading it is what helps
    anonymous = app.test_client()
    login = anonymous.post("/admin/login", data={"email": "x@example.com", "password": "x", "csrf_token": "old"})
    assert login.status_code == 400 and "form expired" in login.get_data(as_text=True)


def test_an_htmx_post_without_the_csrf_token_is_refused_and_with_it_passes(app):
    client = signed_in(app, "viewer", email="vic@example.com")
    form = {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "repeat": NEW_PASSWORD}
    refused = client.post("/admin/account", data=form, headers=HX)
    assert refused.status_code == 400
    assert _flash_event(refused)[0]["category"] == "error"
    assert "did not come from this site" in _flash_event(refused)[0]["text"]
    with app.app_context():
        assert check_password(get_session().query(User).filter_by(email="vic@example.com").one(), PASSWORD)
    passed = client.post("/admin/account", data=form, headers={**HX, "X-CSRF-Token": client.csrf})
    assert passed.status_code == 302
    with app.app_context():
        assert check_password(get_session().query(User).filter_by(email="vic@example.com").one(), NEW_PASSWORD)
    # the result reaches the next htmx answer as the nudge:flash event
    assert _flash_event(client.get("/admin/account", headers=HX)) == [
        {"category": "success", "text": "Your password was changed."}
    ]


def test_an_htmx_error_carries_its_message_for_the_alert_area(app):
    client = signed_in(app, "viewer")
    wrong = client.post(
        "/admin/account",
        data={"current_password": "nope", "new_password": NEW_PASSWORD, "repeat": NEW_PASSWORD},
        headers={**HX, "X-CSRF-Token": client.csrf},
    )
    assert wrong.status_code == 422
    assert _flash_event(wrong)[0] == {
        "category": "error",
        "text": "Your password was not changed: This is not your current password.",
    }


def test_a_signed_out_htmx_request_is_sent_to_sign_in_from_the_page_it_came_from(app):
    response = app.test_client().get("/admin/", headers=HX)
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/admin/login?next=/admin/account"


def test_full_pages_show_results_as_status_and_errors_as_alerts(app):
    client = signed_in(app, "viewer")
    client.post(
        "/admin/account",
        data={
            "csrf_token": client.csrf,
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "repeat": NEW_PASSWORD,
        },
    )
    html = client.get("/admin/account").get_data(as_text=True)
    status = re.search(r'<div id="flash-status" role="status">(.*?)</div>', html, re.S).group(1)
    assert "Your password was changed." in status
    wrong = client.post(
        "/admin/account",
        data={"csrf_token": client.csrf, "current_password": "nope", "new_password": "x", "repeat": "x"},
    )
    alert = re.search(r'<div id="flash-alert" role="alert">(.*?)</div>', wrong.get_data(as_text=True), re.S).group(1)
    assert "This is not your current password." in alert


def test_a_refused_full_page_is_shown_in_the_layout(app):
    area = admin_blueprint("secret_area", __name__, url_prefix="/admin/secret")
    area.add_url_rule("/", "index", requires(Role.ADMIN)(lambda: "secret"))
    app.register_blueprint(area)
    response = signed_in(app, "viewer").get("/admin/secret/")
    html = response.get_data(as_text=True)
    assert response.status_code == 403 and "secret" not in html.split("<main", 1)[1].split("Forbidden", 1)[0]
    assert "Your role (viewer) cannot open this; it needs admin." in html and 'aria-label="Main"' in html


def test_a_page_that_fails_in_the_database_shows_the_error_page_not_a_second_error(app):
    """A failed flush leaves the session needing a rollback; the error page (it reads the person) raised again."""

    def broken():
        session = get_session()
        session.add(User(email="twice@example.com", password_hash="x", role="viewer"))
        session.add(User(email="twice@example.com", password_hash="x", role="viewer"))
        session.flush()  # the second breaks the unique address
        return "unreachable"

    area = admin_blueprint("broken_area", __name__, url_prefix="/admin/broken")
    area.add_url_rule("/", "index", requires(Role.VIEWER)(broken))
    app.register_blueprint(area)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: the error is a page, not raised to the test
    client = signed_in(app, "viewer", email="vera@example.com")
    response = client.get("/admin/broken/")
    html = response.get_data(as_text=True)
    assert response.status_code == 500 and 'aria-label="Main"' in html and "vera@example.com" in html
    assert client.get("/admin/account").status_code == 200  # the next request is fine


# -- escaping ------------------------------------------------------------------------------------------------
def test_hostile_addresses_are_shown_as_text(app):
    hostile = '"><script>alert(1)</script><img src=x onerror=alert(2)>@example.com'
    client = signed_in(app, "admin", email=hostile)
    with app.app_context():
        session = get_session()
        session.add(Message(key="k<b>1", channel="email", template="<svg onload=alert(3)>", status="failed", data={}))
        session.commit()
    html = client.get("/admin/").get_data(as_text=True)
    assert "<script>alert(1)" not in html and "<img src=x" not in html and "<svg onload" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;svg onload=alert(3)&gt;" in html


# -- the dashboard -----------------------------------------------------------------------------------------
def _messages(app, *rows):
    with app.app_context():
        session = get_session()
        for i, (status, age) in enumerate(rows):
            session.add(
                Message(
                    key=f"m{i}",
                    channel="email",
                    template="t",
                    status=status,
                    data={},
                    created_at=utcnow() - age,
                    attempts=0,
                )
            )
        session.commit()


def test_the_dashboard_shows_the_oldest_pending_sends_age_and_failed_work(app):
    _messages(
        app,
        ("pending", timedelta(hours=2, minutes=5)),
        ("pending", timedelta(minutes=1)),
        ("failed", timedelta(days=1)),
        ("unknown", timedelta(days=1)),
    )
    html = signed_in(app, "viewer").get("/admin/").get_data(as_text=True)
    figure = re.search(r"Oldest pending send</dt>\s*<dd>([^<]+)</dd>", html).group(1)
    assert figure == "2 h 5 min"
    assert re.search(r"Failed sends(</a>)?</dt>\s*<dd>1</dd>", html)
    assert re.search(r"Outcome unknown(</a>)?</dt>\s*<dd>1</dd>", html)


def test_the_dashboard_links_to_the_messages_area(app):
    _messages(app, ("failed", timedelta(hours=1)))
    html = signed_in(app, "viewer").get("/admin/").get_data(as_text=True)
    assert '<a href="/admin/messages/?status=failed">Failed sends</a>' in html
    assert '<a href="/admin/messages/">Messages</a>' in html


def test_a_user_made_without_a_role_may_only_read(app):
    make_user(app, "plain@example.com")
    with app.app_context():
        assert get_session().query(User).filter_by(email="plain@example.com").one().role == "viewer"


# -- labelled controls --------------------------------------------------------------------------------------
class _Controls(HTMLParser):
    """Collects form controls and the ids labels point at; notes controls inside a <label>."""

    def __init__(self):
        super().__init__()
        self.controls, self.labelled, self.depth = [], set(), 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "label":
            self.depth += 1
            if attrs.get("for"):
                self.labelled.add(attrs["for"])
        elif tag in ("input", "select", "textarea") and attrs.get("type") not in ("hidden", "submit"):
            self.controls.append((tag, attrs, self.depth > 0))

    def handle_endtag(self, tag):
        if tag == "label":
            self.depth -= 1


def test_every_control_on_every_admin_page_has_a_label(app):
    client = signed_in(app, "admin")
    make_user(app, "other@example.com", role="viewer")
    with app.app_context():
        other = get_session().query(User).filter_by(email="other@example.com").one().id
    pages = [
        *_admin_pages(app, client),
        (f"/admin/users/{other}", client.get(f"/admin/users/{other}")),
        ("/admin/login", app.test_client().get("/admin/login")),
    ]
    seen = 0
    for url, response in pages:
        parser = _Controls()
        parser.feed(response.get_data(as_text=True))
        for tag, attrs, inside in parser.controls:
            assert inside or attrs.get("id") in parser.labelled or attrs.get("aria-label"), f"{url}: {tag} {attrs}"
            seen += 1
    assert seen >= 10
