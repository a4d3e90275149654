"""The admin area's own blueprint: sign-in, the dashboard, users, API keys and the signed-in person's account.

Other areas (rules, contacts, messages, tasks) are blueprints of their own made with
:func:`server.web.access.admin_blueprint` and listed with :func:`server.web.nav.add`; they use the same
layout (``admin/layout.html``), role declarations and flash area.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint

from ...models import Role
from ..access import protect, requires

bp: Blueprint = protect(Blueprint("admin", __name__, url_prefix="/admin"))

#: for admin pages outside ``/admin`` (plugins' pages): sign-in and roles exactly as :func:`requires` checks
#: them; the page may be read by any role, changed by editors and admins
login_required: Callable[[Callable[..., Any]], Callable[..., Any]] = requires(Role.VIEWER)

from . import account, apikeys, dashboard, session, users  # noqa: E402,F401  (register routes)
from .session import local_target  # noqa: E402

__all__ = ["bp", "local_target", "login_required"]
