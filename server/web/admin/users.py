"""Users, managed by admins: list, create (a one-time password shown once), change role, disable, enable, reset.

Each change is made by :mod:`server.users` (audited, the last admin kept) and reported in the flash area.
A change asked for by htmx answers with the user's updated table row; a plain form post goes back to the list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import abort, make_response, redirect, render_template, request, url_for

from ... import users as accounts
from ...db import get_session
from ...models import Role, User
from ..access import actor, current_user, requires
from ..flash import is_htmx, notify
from ..nav import add
from ..signin import live_since
from . import bp

add(bp, "Users", "admin.users", order=80)
ROLE_CHOICES = [(r.value, r.value) for r in (Role.VIEWER, Role.EDITOR, Role.ADMIN)]
MAX_ID = 2**31 - 1  # the largest id a row has: a larger one in the URL is no user (and no database takes it)


def _user(user_id: int) -> User:
    user = get_session().get(User, user_id) if 0 < user_id <= MAX_ID else None
    if user is None:
        abort(404, description=f"There is no user with id {user_id}; it may have been removed.")
    return user


def _me() -> int:
    me = current_user()
    assert me is not None  # requires() signed them in
    return me.id


def _sessions() -> dict[int, int]:
    return accounts.active_sessions(get_session(), live_since())


def _row_or_list(user: User, status: int = 200) -> Any:
    """After a change: the user's row for htmx (flash in its header), else back to the list (flash on the page)."""
    if is_htmx():
        return render_template("admin/_user_row.html", u=user, sessions=_sessions(), roles=ROLE_CHOICES), status
    return redirect(url_for("admin.users"))


def _refused(exc: accounts.UserError) -> Any:
    notify(f"Not changed: {exc}.", "error")
    if is_htmx():
        return "", 409
    return redirect(request.referrer if _same_site(request.referrer) else url_for("admin.users"))


def _same_site(url: str | None) -> bool:
    return bool(url) and url.startswith(request.host_url + "admin/")  # type: ignore[union-attr]


def _secret_page(title: str, user: User, secret: str) -> Any:
    """The one page that shows a password: never cached, never stored, never sent again."""
    response = make_response(
        render_template(
            "admin/secret.html",
            title=title,
            subject=user.email,
            what="one-time password",
            secret=secret,
            back=url_for("admin.user", user_id=user.id),
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/users/")
@requires(Role.ADMIN)
def users():
    db = get_session()
    rows = db.query(User).order_by(User.email).all()
    return render_template("admin/users.html", users=rows, sessions=_sessions(), roles=ROLE_CHOICES)


@bp.route("/users/new", methods=["GET", "POST"])
@requires(Role.ADMIN)
def user_new():
    form = {"email": "", "role": Role.VIEWER.value}
    errors: dict[str, str] = {}
    if request.method == "POST":
        form = {"email": request.form.get("email", ""), "role": request.form.get("role", "")}
        chosen = request.form.get("password", "") if request.form.get("password_choice") == "chosen" else None
        if chosen == "":
            errors["password"] = "Type the password you chose, or let Nudge make a one-time password."
        else:
            try:
                user, secret = accounts.create_user(get_session(), form["email"], form["role"], actor(), chosen)
            except accounts.UserError as exc:
                errors[exc.field or "email"] = str(exc)
            else:
                notify(f"User {user.email} created as {user.role}.")
                if chosen is None:
                    return _secret_page("User created", user, secret)
                return redirect(url_for("admin.user", user_id=user.id))
        notify("The user was not created: " + " ".join(errors.values()), "error")
    return render_template("admin/user_new.html", form=form, errors=errors, roles=ROLE_CHOICES), 422 if errors else 200


@bp.get("/users/<int:user_id>")
@requires(Role.ADMIN)
def user(user_id: int):
    return render_template("admin/user.html", u=_user(user_id), sessions=_sessions(), roles=ROLE_CHOICES, me=_me())


def _change(user_id: int, change: Callable[[User], tuple[str, str]]) -> Any:
    """Make *change* to the user (it returns the message and its category); report a refusal instead."""
    user = _user(user_id)
    try:
        message, category = change(user)
    except accounts.UserError as exc:
        return _refused(exc)
    notify(message, category)
    return _row_or_list(user)


@bp.post("/users/<int:user_id>/role")
@requires(Role.ADMIN)
def user_role(user_id: int):
    def change(user: User) -> tuple[str, str]:
        if accounts.change_role(get_session(), user, request.form.get("role", ""), actor()):
            return f"{user.email} is now {user.role}.", "success"
        return f"{user.email} was {user.role} already.", "info"

    return _change(user_id, change)


@bp.post("/users/<int:user_id>/disable")
@requires(Role.ADMIN)
def user_disable(user_id: int):
    def change(user: User) -> tuple[str, str]:
        ended = accounts.disable(get_session(), user, actor(), actor_id=_me())
        return f"{user.email} is disabled; {ended} session(s) ended.", "success"

    return _change(user_id, change)


@bp.post("/users/<int:user_id>/enable")
@requires(Role.ADMIN)
def user_enable(user_id: int):
    def change(user: User) -> tuple[str, str]:
        accounts.enable(get_session(), user, actor())
        return f"{user.email} can sign in again.", "success"

    return _change(user_id, change)


@bp.post("/users/<int:user_id>/password")
@requires(Role.ADMIN)
def user_password(user_id: int):
    user = _user(user_id)
    chosen = request.form.get("password", "") if request.form.get("password_choice") == "chosen" else None
    if chosen == "":
        return _refused(accounts.UserError("type the password you chose, or let Nudge make a one-time password"))
    try:
        secret, ended = accounts.reset_password(get_session(), user, actor(), chosen, actor_id=_me())
    except accounts.UserError as exc:
        return _refused(exc)
    notify(f"New password set for {user.email}; {ended} session(s) ended.")
    if chosen is None:
        return _secret_page("Password reset", user, secret)
    return redirect(url_for("admin.user", user_id=user.id))
