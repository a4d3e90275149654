"""Users and API keys pages, through the test client: every change works, is audited and reported, and every
refusal (role, last admin, own account, weak password, bad input) changes nothing and says why."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from server.auth import check_password
from server.db import get_session
from server.models import AdminSession, ApiKey, AuditEntry, Role, User

from ..helpers import PASSWORD, make_user, signed_in

HX = {"HX-Request": "true", "HX-Current-URL": "http://localhost/admin/users/"}
CHOSEN = "a sturdy chosen passphrase"


def _user(app, email) -> User:
    with app.app_context():
        user = get_session().scalar(select(User).where(User.email == email))
        get_session().expunge_all()
        return user


def _audit(app, action) -> list[AuditEntry]:
    with app.app_context():
        return list(get_session().scalars(select(AuditEntry).where(AuditEntry.action == action)))


def _post(client, url, hx=False, **form):
    headers = {**HX, "X-CSRF-Token": client.csrf} if hx else {}
    return client.post(url, data={**form, "csrf_token": client.csrf}, headers=headers)


def _flash(response) -> list[dict]:
    return json.loads(response.headers["HX-Trigger"])["nudge:flash"]["messages"]


def _page_flash(client, url="/admin/users/") -> str:
    html = client.get(url).get_data(as_text=True)
    return " ".join(re.findall(r'<p class="flash-message flash-\w+">([^<]*)</p>', html))


def _secret(response) -> str:
    return re.search(r'<code id="secret" class="secret"[^>]*>([^<]+)</code>', response.get_data(as_text=True)).group(1)


def _sessions(app, email) -> int:
    with app.app_context():
        return get_session().query(AdminSession).join(User).filter(User.email == email).count()


# -- the list ------------------------------------------------------------------------------------------------
def test_the_list_shows_each_user_with_role_dates_and_sessions_escaped(app):
    admin = signed_in(app, "admin", email="boss@example.com")
    hostile = "<script>alert(1)</script>@example.com"
    make_user(app, hostile, role="editor")
    signed_in(app, "viewer", email="vera@example.com")
    signed_in_twice = app.test_client()
    signed_in_twice.post(
        "/admin/login",
        data={
            "email": "vera@example.com",
            "password": PASSWORD,
            "csrf_token": re.search(
                r'name="csrf_token" value="([^"]+)"', signed_in_twice.get("/admin/login").get_data(as_text=True)
            ).group(1),
        },
    )
    html = admin.get("/admin/users/").get_data(as_text=True)
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;@example.com" in html
    vera = re.search(r'<tr id="user-\d+">\s*<th scope="row"><a [^>]+>vera@example.com</a>.*?</tr>', html, re.S).group(0)
    assert '<option value="viewer" selected>' in vera and "UTC" in vera  # created and last sign-in
    assert re.search(r'<td class="num">2</td>', vera)  # two browsers signed in
    assert '<label class="visually-hidden" for="role-' in vera  # every control has a label


# -- creating ------------------------------------------------------------------------------------------------
def test_an_admin_creates_a_user_whose_one_time_password_is_shown_once(app):
    admin = signed_in(app, "admin")
    response = _post(
        admin, "/admin/users/new", email="New.Person@Example.com", role="editor", password_choice="one-time"
    )
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    secret = _secret(response)
    assert "User new.person@example.com created as editor." in response.get_data(as_text=True)
    user = _user(app, "new.person@example.com")
    assert user.role == "editor" and check_password(user, secret)
    [entry] = _audit(app, "user.created")
    assert entry.target_id == str(user.id) and entry.detail == {"role": "editor", "password": "one-time"}
    assert secret not in admin.get(f"/admin/users/{user.id}").get_data(as_text=True)
    assert secret not in json.dumps(entry.detail)


def test_a_chosen_password_is_checked_and_a_bad_user_is_not_created(app):
    admin = signed_in(app, "admin", email="boss@example.com")
    for form, said in [
        (
            {"email": "x@example.com", "role": "editor", "password_choice": "chosen", "password": "short"},
            "password refused: it has 5 characters; use at least 12",
        ),
        (
            {"email": "x@example.com", "role": "editor", "password_choice": "chosen", "password": ""},
            "Type the password you chose",
        ),
        ({"email": "not an address", "role": "editor"}, "is not a valid address"),
        ({"email": "boss@example.com", "role": "editor"}, "there is already a user boss@example.com"),
        ({"email": "x@example.com", "role": "owner"}, "role &#39;owner&#39; is not one of viewer, editor, admin"),
    ]:
        response = _post(admin, "/admin/users/new", **form)
        assert response.status_code == 422, form
        assert said in response.get_data(as_text=True), form
    assert _user(app, "x@example.com") is None and _audit(app, "user.created") == []
    created = _post(
        admin, "/admin/users/new", email="x@example.com", role="viewer", password_choice="chosen", password=CHOSEN
    )
    assert created.status_code == 302 and check_password(_user(app, "x@example.com"), CHOSEN)


# -- roles ---------------------------------------------------------------------------------------------------
def test_changing_a_role_over_htmx_answers_the_row_and_the_result(app):
    admin = signed_in(app, "admin")
    make_user(app, "ed@example.com", role="editor")
    uid = _user(app, "ed@example.com").id
    response = _post(admin, f"/admin/users/{uid}/role", hx=True, role="viewer")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith(f'<tr id="user-{uid}">') and '<option value="viewer" selected>' in html
    assert "<html" not in html  # a partial, not a page
    assert _flash(response) == [{"category": "success", "text": "ed@example.com is now viewer."}]
    assert _user(app, "ed@example.com").role == "viewer"
    [entry] = _audit(app, "user.role_changed")
    assert entry.detail == {"before": "editor", "after": "viewer"} and entry.actor.startswith("user:")


def test_the_last_admin_can_be_neither_demoted_nor_disabled(app):
    from server.users import UserError, disable

    admin = signed_in(app, "admin", email="only@example.com")
    me = _user(app, "only@example.com").id
    refused = _post(admin, f"/admin/users/{me}/role", hx=True, role="editor")
    assert refused.status_code == 409
    assert _flash(refused)[0]["category"] == "error"
    assert "only@example.com is the last admin" in _flash(refused)[0]["text"]
    plain = _post(admin, f"/admin/users/{me}/role", role="viewer")
    assert plain.status_code == 302 and "is the last admin" in _page_flash(admin)
    assert _user(app, "only@example.com").role == "admin" and _audit(app, "user.role_changed") == []
    with app.app_context(), pytest.raises(UserError, match="last admin"):
        disable(get_session(), get_session().get(User, me), "test")
    # with a second admin, the first may step down
    make_user(app, "second@example.com", role="admin")
    assert _post(admin, f"/admin/users/{me}/role", role="editor").status_code == 302
    assert _user(app, "only@example.com").role == "editor"


# -- disabling and resetting end sessions ---------------------------------------------------------------------
def test_disabling_a_user_ends_all_their_sessions_at_once_and_bars_sign_in(app):
    admin = signed_in(app, "admin")
    victim = signed_in(app, "editor", email="gone@example.com")
    uid = _user(app, "gone@example.com").id
    assert victim.get("/admin/").status_code == 200
    response = _post(admin, f"/admin/users/{uid}/disable", hx=True)
    assert response.status_code == 200 and "status-disabled" in response.get_data(as_text=True)
    assert _flash(response)[0]["text"] == "gone@example.com is disabled; 1 session(s) ended."
    assert _sessions(app, "gone@example.com") == 0
    after = victim.get("/admin/")
    assert after.status_code == 302 and after.headers["Location"].startswith("/admin/login")
    again = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', again.get("/admin/login").get_data(as_text=True)).group(1)
    barred = again.post("/admin/login", data={"email": "gone@example.com", "password": PASSWORD, "csrf_token": token})
    assert barred.status_code == 403 and "This account is disabled" in barred.get_data(as_text=True)
    assert _audit(app, "user.disabled")[0].detail == {"sessions_ended": 1}
    assert _post(admin, f"/admin/users/{uid}/enable").status_code == 302
    ok = again.post("/admin/login", data={"email": "gone@example.com", "password": PASSWORD, "csrf_token": token})
    assert ok.status_code == 302


def test_resetting_a_password_ends_that_users_sessions_and_shows_the_new_one_once(app):
    admin = signed_in(app, "admin")
    other = signed_in(app, "viewer", email="reset@example.com")
    uid = _user(app, "reset@example.com").id
    response = _post(admin, f"/admin/users/{uid}/password", password_choice="one-time")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    secret = _secret(response)
    assert check_password(_user(app, "reset@example.com"), secret)
    assert not check_password(_user(app, "reset@example.com"), PASSWORD)
    assert other.get("/admin/").status_code == 302
    assert _audit(app, "user.password_reset")[0].detail == {"password": "one-time", "sessions_ended": 1}
    weak = _post(admin, f"/admin/users/{uid}/password", password_choice="chosen", password="reset")
    assert weak.status_code == 302 and "password refused" in _page_flash(admin)
    assert check_password(_user(app, "reset@example.com"), secret)


def test_an_admin_cannot_disable_or_reset_their_own_account_here(app):
    admin = signed_in(app, "admin", email="me@example.com")
    make_user(app, "other-admin@example.com", role="admin")
    me = _user(app, "me@example.com").id
    assert _post(admin, f"/admin/users/{me}/disable", hx=True).status_code == 409
    assert _post(admin, f"/admin/users/{me}/password", hx=True, password_choice="one-time").status_code == 409
    assert _user(app, "me@example.com").disabled_at is None and check_password(_user(app, "me@example.com"), PASSWORD)
    assert admin.get("/admin/").status_code == 200


def test_changes_to_users_who_do_not_exist_are_not_found(app):
    admin = signed_in(app, "admin")
    for action in ("role", "disable", "enable", "password"):
        response = _post(admin, f"/admin/users/999999/{action}", hx=True, role="viewer")
        assert response.status_code == 404 and "no user with id 999999" in _flash(response)[0]["text"]


@pytest.mark.parametrize("role", ["viewer", "editor"])
def test_only_admins_manage_users_and_keys(app, role):
    client = signed_in(app, role)
    make_user(app, "target@example.com", role="viewer")
    uid = _user(app, "target@example.com").id
    for url, form in [
        ("/admin/users/new", {"email": "n@example.com", "role": "admin"}),
        (f"/admin/users/{uid}/role", {"role": "admin"}),
        (f"/admin/users/{uid}/disable", {}),
        (f"/admin/users/{uid}/password", {}),
        ("/admin/apikeys/", {"scope": "admin"}),
    ]:
        assert _post(client, url, **form).status_code == 403, url
    assert _user(app, "target@example.com").role == "viewer" and _user(app, "n@example.com") is None
    assert _user(app, client.email).role == role  # nobody promotes themselves
    with app.app_context():
        assert get_session().query(ApiKey).count() == 0


# -- your own password ----------------------------------------------------------------------------------------
def test_changing_your_own_password_needs_the_current_one_and_ends_your_other_sessions(app):
    here = signed_in(app, "viewer", email="me@example.com")
    there = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', there.get("/admin/login").get_data(as_text=True)).group(1)
    there.post("/admin/login", data={"email": "me@example.com", "password": PASSWORD, "csrf_token": token})
    assert there.get("/admin/").status_code == 200
    for form, said in [
        ({"current_password": "wrong", "new_password": CHOSEN, "repeat": CHOSEN}, "This is not your current password."),
        ({"current_password": PASSWORD, "new_password": "short", "repeat": "short"}, "Password refused: it has 5"),
        (
            {"current_password": PASSWORD, "new_password": CHOSEN, "repeat": CHOSEN + "!"},
            "The two new passwords differ.",
        ),
        ({"current_password": PASSWORD, "new_password": PASSWORD, "repeat": PASSWORD}, "the same as the current one"),
    ]:
        response = _post(here, "/admin/account", **form)
        assert response.status_code == 422 and said in response.get_data(as_text=True), form
    assert check_password(_user(app, "me@example.com"), PASSWORD) and there.get("/admin/").status_code == 200
    done = _post(here, "/admin/account", current_password=PASSWORD, new_password=CHOSEN, repeat=CHOSEN)
    assert done.status_code == 302
    assert "1 other session(s) were signed out" in _page_flash(here, "/admin/account")
    assert here.get("/admin/").status_code == 200  # this browser stays signed in
    assert there.get("/admin/").status_code == 302  # the other one is out
    assert _audit(app, "user.password_changed")[0].detail == {"sessions_ended": 1}


# -- API keys ---------------------------------------------------------------------------------------------------
def test_api_keys_are_created_shown_once_listed_without_secrets_and_revoked_at_once(app, client):
    admin = signed_in(app, "admin")
    response = _post(admin, "/admin/apikeys/", name="signup <form>", scope="ingest", expires="90d")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    key = _secret(response)
    assert key.startswith("nk_ingest_")
    event = {"contact": {"email": "a@example.com"}, "event": "form.submitted"}
    assert client.post("/api/v1/events", json=event, headers={"Authorization": f"Bearer {key}"}).status_code == 202
    listing = admin.get("/admin/apikeys/").get_data(as_text=True)
    with app.app_context():
        row = get_session().scalar(select(ApiKey))
        prefix, digest = row.prefix, row.key_hash
    secret_part = key.removeprefix(f"nk_ingest_{prefix}_")  # base64url: may itself contain "_"
    assert secret_part != key and len(secret_part) >= 20
    assert key not in listing and digest not in listing and secret_part not in listing
    assert f"<code>{prefix}</code>" in listing and "signup &lt;form&gt;" in listing and "status-active" in listing
    revoked = _post(admin, f"/admin/apikeys/{prefix}/revoke", hx=True)
    assert revoked.status_code == 200 and "status-revoked" in revoked.get_data(as_text=True)
    assert _flash(revoked)[0]["text"] == f"API key {prefix} revoked: it is refused from now on."
    refused = client.post("/api/v1/events", json=event, headers={"Authorization": f"Bearer {key}"})
    assert refused.status_code == 401 and refused.get_json()["title"] == "API key revoked"
    actions = [e.action for e in _audit(app, "apikey.created") + _audit(app, "apikey.revoked")]
    assert actions == ["apikey.created", "apikey.revoked"]
    assert _audit(app, "apikey.revoked")[0].actor.startswith("user:")


def test_a_key_with_a_bad_scope_or_expiry_is_not_created(app):
    admin = signed_in(app, "admin")
    for form, said in [
        ({"scope": "root"}, "Choose a scope: ingest, admin."),
        ({"scope": "ingest", "expires": "soon"}, "is neither a span like 90d"),
        ({"scope": "ingest", "expires": "2001-01-01"}, "is not in the future"),
        ({"scope": "ingest", "name": "n" * 256}, "longer than 255 characters"),
    ]:
        response = _post(admin, "/admin/apikeys/", **form)
        assert response.status_code == 422 and said in response.get_data(as_text=True), form
    assert _post(admin, "/admin/apikeys/nope/revoke").status_code == 404
    with app.app_context():
        assert get_session().query(ApiKey).count() == 0


def test_role_enum_orders_the_roles():
    assert Role.ADMIN.allows(Role.EDITOR) and Role.EDITOR.allows(Role.VIEWER) and not Role.VIEWER.allows(Role.EDITOR)
