"""The admin area: sign-in and the dashboard."""
from __future__ import annotations

import math
from functools import wraps
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

from flask import Blueprint, g, redirect, render_template, request, url_for
from sqlalchemy import func, select

from ..auth import check_password
from ..db import get_session
from ..models import Contact, Event, Message, User
from .forms import client_ip
from .signin import end_session, guard, signed_in_user, start_session

bp = Blueprint("admin", __name__, url_prefix="/admin")
#: the admin pages that do not need a signed-in user (signing out of a dead session is harmless)
PUBLIC_ENDPOINTS = frozenset({"admin.login", "admin.logout"})


def _sign_in_first() -> Any:
    """None when this browser's server-side session is live (its user in ``g.user_id``), else a redirect."""
    user_id = signed_in_user()
    if user_id is None:
        return redirect(url_for("admin.login", next=request.path))
    g.user_id = user_id
    return None


@bp.before_request
def _require_sign_in() -> Any:
    """Every admin page but sign-in and sign-out needs a live server-side session."""
    return None if request.endpoint in PUBLIC_ENDPOINTS else _sign_in_first()


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """For admin views outside this blueprint (plugins' pages): the same server-side session check."""
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return _sign_in_first() or view(*args, **kwargs)

    return wrapper


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
def login():
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
                start_session(user)
                return redirect(local_target(request.args.get("next")) or url_for("admin.dashboard"))
            error, status = "Wrong email or password.", 401
    return render_template("admin/login.html", error=error), status, headers


@bp.post("/logout")
def logout():
    end_session()
    return redirect(url_for("admin.login"))


@bp.get("/")
def dashboard():
    db = get_session()
    counts = {
        "contacts": db.scalar(select(func.count(Contact.id))),
        "events": db.scalar(select(func.count(Event.id))),
        "messages": db.scalar(select(func.count(Message.id))),
    }
    recent = db.scalars(select(Message).order_by(Message.id.desc()).limit(20)).all()
    return render_template("admin/dashboard.html", counts=counts, recent=recent)
