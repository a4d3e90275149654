"""Users and API keys in a real browser: an admin creates, changes, disables and resets users and manages keys;
a password change or a revocation ends that person's sessions (their other browser's next request goes to sign-in)."""

from __future__ import annotations

import re

from .conftest import PASSWORD, make_user, shot, sign_in

CHOSEN = "a sturdy chosen passphrase"


def _row(page, email):
    return page.get_by_role("row").filter(has=page.get_by_role("link", name=email, exact=True))


def _goes_to_sign_in(page) -> None:
    page.reload()
    page.wait_for_url(re.compile(r"/admin/login\?next="))
    assert page.get_by_role("heading", level=1).inner_text() == "Sign in to Nudge"


def test_an_admin_creates_a_user_who_signs_in_with_the_one_time_password(app, page, other_page):
    make_user(app, "boss@example.com", role="admin")
    sign_in(page, "boss@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
    shot(page, "users")
    page.get_by_role("link", name="New user").click()
    page.get_by_label("Email").fill("new.editor@example.com")
    page.get_by_label("Role", exact=True).select_option("editor")
    shot(page, "user-new")
    page.get_by_role("button", name="Create user").click()
    assert "User new.editor@example.com created as editor." in page.get_by_role("status").inner_text()
    secret = page.locator("#secret").inner_text().strip()
    shot(page, "user-created-secret")
    sign_in(other_page, "new.editor@example.com", secret)
    account = other_page.locator(".account")
    assert "new.editor@example.com" in account.inner_text() and "editor" in account.inner_text()
    nav = other_page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="Users").count() == 0 and nav.get_by_role("link", name="API keys").count() == 0
    other_page.goto("/admin/users/")
    assert "Your role (editor) cannot open this; it needs admin." in other_page.get_by_role("main").inner_text()
    shot(other_page, "refused-403")


def test_changing_a_role_in_the_list_updates_the_row_and_says_so(app, page):
    make_user(app, "boss@example.com", role="admin")
    make_user(app, "vic@example.com", role="viewer")
    sign_in(page, "boss@example.com")
    page.goto("/admin/users/")
    page.get_by_label("Role of vic@example.com", exact=True).select_option("editor")
    _row(page, "vic@example.com").get_by_role("button", name="Change the role of vic@example.com").click()
    page.get_by_role("status").get_by_text("vic@example.com is now editor.").wait_for()
    assert page.url.endswith("/admin/users/")  # htmx: the row changed in place
    assert page.get_by_label("Role of vic@example.com", exact=True).input_value() == "editor"
    # the last admin stays: the refusal shows in the alert area, the role is unchanged
    page.get_by_label("Role of boss@example.com", exact=True).select_option("viewer")
    _row(page, "boss@example.com").get_by_role("button", name="Change the role of boss@example.com").click()
    page.get_by_role("alert").get_by_text(re.compile("boss@example.com is the last admin")).wait_for()
    page.reload()
    assert page.get_by_label("Role of boss@example.com", exact=True).input_value() == "admin"


def test_disabling_a_user_signs_out_their_browser_at_once(app, page, other_page):
    make_user(app, "boss@example.com", role="admin")
    make_user(app, "ed@example.com", role="editor")
    sign_in(other_page, "ed@example.com")
    sign_in(page, "boss@example.com")
    page.goto("/admin/users/")
    asked = []
    page.on("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    _row(page, "ed@example.com").get_by_role("button", name="Disable ed@example.com").click()
    page.get_by_role("status").get_by_text("ed@example.com is disabled; 1 session(s) ended.").wait_for()
    assert asked == ["Disable ed@example.com? They are signed out everywhere at once and cannot sign in."]
    assert _row(page, "ed@example.com").get_by_text("disabled").is_visible()
    _goes_to_sign_in(other_page)
    other_page.get_by_label("Email").fill("ed@example.com")
    other_page.get_by_label("Password").fill(PASSWORD)
    other_page.get_by_role("button", name="Sign in").click()
    assert "This account is disabled" in other_page.get_by_role("alert").inner_text()


def test_resetting_a_password_signs_out_that_users_browser(app, page, other_page):
    make_user(app, "boss@example.com", role="admin")
    make_user(app, "vic@example.com", role="viewer")
    sign_in(other_page, "vic@example.com")
    sign_in(page, "boss@example.com")
    page.goto("/admin/users/")
    page.get_by_role("link", name="Manage vic@example.com").click()
    shot(page, "user")
    page.get_by_label("Use this one:").check()
    page.get_by_label("Chosen password").fill(CHOSEN)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Reset password").click()
    page.get_by_role("status").get_by_text("New password set for vic@example.com; 1 session(s) ended.").wait_for()
    # the other browser's next htmx request (401 with HX-Redirect) takes it to sign-in, back to where it was
    other_page.evaluate("htmx.ajax('GET', '/admin/account', {source: document.body, swap: 'none'})")
    other_page.wait_for_url(re.compile(r"/admin/login\?next=/admin/$"))
    _goes_to_sign_in(other_page)
    sign_in(other_page, "vic@example.com", CHOSEN)


def test_changing_your_own_password_signs_out_your_other_browser(app, page, other_page):
    make_user(app, "vic@example.com", role="viewer")
    sign_in(page, "vic@example.com")
    sign_in(other_page, "vic@example.com")
    page.get_by_role("link", name="vic@example.com").click()
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password", exact=True).fill(CHOSEN)
    page.get_by_label("Repeat the new password").fill(CHOSEN)
    page.get_by_role("button", name="Change password").click()
    assert "1 other session(s) were signed out" in page.get_by_role("status").inner_text()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Dashboard"  # this browser stays in
    _goes_to_sign_in(other_page)


def test_an_admin_creates_and_revokes_an_api_key(app, page):
    make_user(app, "boss@example.com", role="admin")
    sign_in(page, "boss@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="API keys").click()
    page.get_by_label("Name").fill("website")
    page.get_by_label("Scope").select_option("ingest")
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#secret").inner_text().strip()
    assert key.startswith("nk_ingest_")
    page.get_by_role("link", name="Done").click()
    assert key not in page.content()
    prefix = key.split("_")[2]
    shot(page, "apikeys")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Revoke key {prefix}").click()
    page.get_by_role("status").get_by_text(f"API key {prefix} revoked: it is refused from now on.").wait_for()
    response = page.request.post(
        "/api/v1/events",
        headers={"Authorization": f"Bearer {key}"},
        data={"contact": {"email": "a@example.com"}, "event": "x.y"},
    )
    assert response.status == 401
