"""Signing in and out of the admin area."""

from __future__ import annotations

import math
from urllib.parse import unquote, urlsplit

from flask import redirect, render_template, request, url_for
from sqlalchemy import select

from ...auth import check_password
from ...db import get_session
from ...models import User
from ..access import public
from ..flash import notify
from ..signin import end_session, guard, start_session
from . import bp


def local_target(value: str | None) -> str | None:
    """*value* when it is a path on this site, read the way a browser reads a ``Location``; else None.

    Browsers drop tabs and line breaks anywhere in a URL and read ``\\`` as ``/``, so
    ``/\\t/evil.example`` and ``/\\evil.example`` lead off-site: anything with a control character
    or a backslash is refused, and so is anything with a scheme or a host, before or after
    percent-decoding.
    """
    if not value or len(value) > 2048:
        return None
    for form in (value, unquote(value)):
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in form) or "\\" in form:
            return None
        if not form.startswith("/") or form.startswith("//"):
            return None
        parts = urlsplit(form)
        if parts.scheme or parts.netloc:
            return None
    return value


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    from ..forms import client_ip  # here: web.forms and the API import each other at load time

    error, status, headers = None, 200, {}
    if request.method == "POST":
        db = get_session()
        email = request.form.get("email", "").strip().lower()
        password = request.form.get("password", "")
        wait = guard().attempt(email, client_ip())
        if wait > 0:
            seconds = math.ceil(wait)
            error, status = f"Too many sign-in attempts. Try again in {seconds} seconds.", 429
            headers["Retry-After"] = str(seconds)
        else:
            user = db.scalar(select(User).where(User.email == email)) if email else None
            # an unknown address is checked against a dummy hash: the answer takes as long either way
            if check_password(user, password) and user is not None:
                guard().succeeded(email, client_ip())
                if user.disabled_at is not None:  # said only to someone who knows the password
                    error, status = "This account is disabled. Ask an admin to enable it.", 403
                else:
                    start_session(user)
                    return redirect(local_target(request.args.get("next")) or url_for("admin.dashboard"))
            else:
                error, status = "Wrong email or password.", 401
    if error:
        notify(error, "error")  # shown in the layout's alert area
    return render_template("admin/login.html"), status, headers


@bp.post("/logout")
@public
def logout():
    end_session()
    return redirect(url_for("admin.login"))
