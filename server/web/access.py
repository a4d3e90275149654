"""Who may open which admin page: every admin view declares the least role it needs, and nothing else is served.

Roles (:class:`~server.models.Role`): a *viewer* reads every admin page and changes nothing but their own
password; an *editor* also changes things (rules, templates, segments, contacts, messages, tasks); an
*admin* also manages users and API keys.

A view declares its role with :func:`requires` (or :func:`public` for the sign-in page). A request that
changes state (any method but GET, HEAD, OPTIONS, TRACE) needs at least an editor unless the view says
otherwise with ``writes=``. Enforcement fails closed: every request under ``/admin`` whose view declares
nothing is refused with a 500 naming the endpoint (a forgotten declaration is a bug, never an open page),
and ``requires`` checks the role itself too, so a page outside ``/admin`` is protected the same way. Plugins,
which import only ``server.sdk``, declare their pages with ``server.sdk.admin_page(role)``: the same check.

A person who is not signed in is sent to the sign-in page (an htmx request gets ``401`` and an
``HX-Redirect`` there); a role too low gets ``403``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, g, redirect, request, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from ..db import get_session
from ..models import Role, User
from ..sdk import ADMIN_ROLE_ATTR
from .admin_input import refuse_unstorable
from .csrf import SAFE_METHODS
from .signin import ADMIN_PREFIX, end_session, return_path, signed_in_user

log = logging.getLogger(__name__)

_ATTR = "nudge_access"


@dataclass(frozen=True)
class Access:
    """What a view needs: ``read`` for safe methods, ``write`` for the others; both None for a public page."""

    read: Role | None
    write: Role | None

    def needed(self, method: str) -> Role | None:
        """The least role for a request with *method*; None when anyone may."""
        return self.read if method in SAFE_METHODS else self.write


def requires(role: Role, *, writes: Role | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare (and enforce) the least role a view needs.

    Put it below the route decorator (``@bp.get(...)`` first, then ``@requires(Role.EDITOR)``), so the
    declaration is on the function Flask calls.

    :param role: the least role for GET and HEAD.
    :param writes: the least role for POST, PUT, PATCH, DELETE; by default *role*, but never below an
        editor: viewers are read-only. Only a page about the signed-in person's own account passes
        ``writes=Role.VIEWER``.
    """
    access = _access(role, writes)

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return enforce(access) or view(*args, **kwargs)

        setattr(wrapper, _ATTR, access)
        return wrapper

    return decorator


def _access(role: Role, writes: Role | None) -> Access:
    return Access(role, writes if writes is not None else (role if role.allows(Role.EDITOR) else Role.EDITOR))


def public(view: Callable[..., Any]) -> Callable[..., Any]:
    """Declare an admin view open to anyone (the sign-in page; signing out of a dead session is harmless)."""
    setattr(view, _ATTR, Access(None, None))
    return view


def declared(view: Callable[..., Any] | None) -> Access | None:
    """How *view* is declared (by :func:`requires`, :func:`public` or a plugin's ``server.sdk.admin_page``), or None."""
    access = getattr(view, _ATTR, None)
    marked = getattr(view, ADMIN_ROLE_ATTR, None)
    if access is None and marked is not None:
        role, writes = marked
        access = _access(Role(role), Role(writes) if writes else None)
    return access


def current_user() -> User | None:
    """The signed-in person (a live server-side session of an enabled account), once per request."""
    if "nudge_user" not in g:
        user = None
        user_id = signed_in_user()
        if user_id is not None:
            user = get_session().get(User, user_id)
            if user is None or user.disabled_at is not None:
                end_session()
                user = None
        g.nudge_user = user
        g.user_id = None if user is None else user.id
    return g.nudge_user


def current_role() -> Role | None:
    user = current_user()
    return None if user is None else Role(user.role)


def may(role: Role) -> bool:
    """Whether the signed-in person's role allows what *role* may do (False when no one is signed in)."""
    found = current_role()
    return found is not None and found.allows(role)


def actor() -> str:
    """Who is acting, for the audit log: ``user:<id>`` of the signed-in person (no address in the log)."""
    user = current_user()
    return f"user:{user.id}" if user is not None else "admin"


def enforce(access: Access) -> BaseResponse | None:
    """None when this request may go on; else the answer for a signed-out person.

    :raises werkzeug.exceptions.Forbidden: when the signed-in person's role is too low.
    """
    g.admin_page = True  # the strict Content-Security-Policy applies (server.web.security)
    needed = access.needed(request.method)
    if needed is None:
        return None
    user = current_user()
    if user is None:
        return _sign_in_first()
    if not Role(user.role).allows(needed):
        verb = "change" if request.method not in SAFE_METHODS else "open"
        abort(
            403,
            description=f"Your role ({user.role}) cannot {verb} this; it needs {needed.value}. "
            "Ask an admin if you need it.",
        )
    return None


def _sign_in_first() -> BaseResponse:
    target = url_for("admin.login", next=return_path())
    if request.headers.get("HX-Request") == "true":
        response = Response("Your session has ended; sign in again.", 401, mimetype="text/plain")
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target)


def guard_request() -> BaseResponse | None:
    """``before_request`` for admin blueprints: refuse a view without a declaration, enforce the rest, then refuse
    text no database stores (:mod:`server.web.admin_input`) before any view reads the request."""
    if g.get("nudge_guarded"):
        return None  # already checked for this request (the app-wide net and the blueprint's guard)
    g.nudge_guarded = True
    view = current_app.view_functions.get(request.endpoint or "")
    access = declared(view)
    if access is None:
        log.error(
            "admin endpoint %s declares no role: refused (add @requires(Role....) below its route)", request.endpoint
        )
        abort(500, description=f"The page {request.endpoint} declares no role, so nobody may use it.")
    answer = enforce(access)
    if answer is None:  # signed in with the role needed: only then does what they sent matter
        refuse_unstorable()
    return answer


def protect(bp: Blueprint) -> Blueprint:
    """Make *bp* an admin blueprint: its views must declare a role, errors show in the admin layout."""
    from .flash import admin_error

    bp.before_request(guard_request)
    bp.register_error_handler(HTTPException, admin_error)
    return bp


def admin_blueprint(name: str, import_name: str, url_prefix: str) -> Blueprint:
    """A new blueprint for an admin area (``url_prefix`` under ``/admin``), protected by :func:`protect`."""
    if not url_prefix.startswith(ADMIN_PREFIX + "/"):
        raise ValueError(f"admin blueprint {name}: url_prefix {url_prefix!r} must start with {ADMIN_PREFIX}/")
    return protect(Blueprint(name, import_name, url_prefix=url_prefix))


def init_app(app: Flask) -> None:
    """Fail closed for every admin path, whichever blueprint serves it; give templates the signed-in user."""

    @app.before_request
    def _admin_paths_declare_a_role() -> BaseResponse | None:
        if request.url_rule is None:
            return None
        if request.url_rule.rule.startswith(ADMIN_PREFIX) or declared(app.view_functions.get(request.endpoint or "")):
            return guard_request()  # an admin path, or a plugin's page declared with server.sdk.admin_page
        return None

    @app.context_processor
    def _user() -> dict[str, Any]:
        return {"admin_user": current_user, "Role": Role}


__all__ = [
    "ADMIN_PREFIX",
    "Access",
    "Role",
    "actor",
    "admin_blueprint",
    "current_role",
    "current_user",
    "declared",
    "enforce",
    "guard_request",
    "init_app",
    "may",
    "protect",
    "public",
    "requires",
    "return_path",
]
