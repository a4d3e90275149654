"""The admin area: sign-in and the dashboard."""
from __future__ import annotations

from functools import wraps
from typing import Any, Callable

from flask import Blueprint, redirect, render_template, request, session, url_for
from sqlalchemy import func, select

from ..auth import check_password
from ..db import get_session
from ..models import Contact, Event, Message, User, utcnow

bp = Blueprint("admin", __name__, url_prefix="/admin")


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not session.get("user_id"):
            return redirect(url_for("admin.login", next=request.path))
        return view(*args, **kwargs)

    return wrapper


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        db = get_session()
        email = request.form.get("email", "").strip().lower()
        user = db.scalar(select(User).where(User.email == email))
        if user is not None and check_password(user, request.form.get("password", "")):
            session.clear()
            session["user_id"] = user.id
            user.last_login_at = utcnow()
            db.commit()
            target = request.args.get("next", "")
            # only local paths: never an open redirect
            if not target.startswith("/") or target.startswith("//"):
                target = url_for("admin.dashboard")
            return redirect(target)
        error = "Wrong email or password."
    return render_template("admin/login.html", error=error), 401 if error else 200


@bp.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("admin.login"))


@bp.get("/")
@login_required
def dashboard():
    db = get_session()
    counts = {
        "contacts": db.scalar(select(func.count(Contact.id))),
        "events": db.scalar(select(func.count(Event.id))),
        "messages": db.scalar(select(func.count(Message.id))),
    }
    recent = db.scalars(select(Message).order_by(Message.id.desc()).limit(20)).all()
    return render_template("admin/dashboard.html", counts=counts, recent=recent)
