"""Your account: every signed-in person sees their own details and changes their own password."""

from __future__ import annotations

from flask import redirect, render_template, request, url_for

from ...auth import check_password, hash_password
from ...contacts import audit
from ...db import get_session
from ...models import Role
from ...passwords import password_problem
from ...users import active_sessions
from ..access import actor, current_user, requires
from ..flash import notify
from ..signin import end_other_sessions, live_since
from . import bp


@bp.route("/account", methods=["GET", "POST"])
@requires(Role.VIEWER, writes=Role.VIEWER)  # a viewer changes nothing but their own password
def account():
    user = current_user()
    assert user is not None  # requires() signed them in
    db = get_session()
    errors: dict[str, str] = {}
    if request.method == "POST":
        current, new, repeat = (request.form.get(k, "") for k in ("current_password", "new_password", "repeat"))
        if not check_password(user, current):
            errors["current_password"] = "This is not your current password."
        elif (problem := password_problem(new, user.email)) is not None:
            errors["new_password"] = f"Password refused: {problem}."
        elif new != repeat:
            errors["repeat"] = "The two new passwords differ."
        elif new == current:
            errors["new_password"] = "The new password is the same as the current one."
        if not errors:
            user.password_hash = hash_password(new)
            ended = end_other_sessions(user.id)
            audit(db, actor(), "user.password_changed", "user", user.id, sessions_ended=ended)
            db.commit()
            notify("Your password was changed." + (f" {ended} other session(s) were signed out." if ended else ""))
            return redirect(url_for("admin.account"))
        notify("Your password was not changed: " + " ".join(errors.values()), "error")
    sessions = active_sessions(db, live_since()).get(user.id, 0)
    return render_template("admin/account.html", user=user, errors=errors, sessions=sessions), 422 if errors else 200
