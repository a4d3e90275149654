"""``nudge admin password`` and roles: a new user is an admin, an existing one keeps their role, --role sets one."""

from __future__ import annotations

from server.db import get_session
from server.models import User

from ..helpers import make_user


def _role(app, email):
    with app.app_context():
        return get_session().query(User).filter_by(email=email).one().role


def test_a_user_made_by_admin_password_is_an_admin(runner, app):
    assert runner.invoke(["admin", "password", "owner@example.com"]).exit_code == 0
    assert _role(app, "owner@example.com") == "admin"


def test_a_new_password_keeps_the_role_unless_role_is_given(runner, app):
    make_user(app, "ed@example.com", role="editor")
    assert runner.invoke(["admin", "password", "ed@example.com"]).exit_code == 0
    assert _role(app, "ed@example.com") == "editor"
    assert runner.invoke(["admin", "password", "ed@example.com", "--role", "viewer"]).exit_code == 0
    assert _role(app, "ed@example.com") == "viewer"
    assert runner.invoke(["admin", "password", "new@example.com", "--role", "editor"]).exit_code == 0
    assert _role(app, "new@example.com") == "editor"
    refused = runner.invoke(["admin", "password", "ed@example.com", "--role", "owner"])
    assert refused.exit_code == 2 and "'owner' is not one of 'admin', 'editor', 'viewer'" in refused.output


def test_the_first_admin_nudge_up_makes_is_an_admin(app):
    from server.auth import ensure_first_admin

    with app.app_context():
        email, _ = ensure_first_admin(get_session())
    assert _role(app, email) == "admin"
