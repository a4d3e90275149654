"""The admin navigation: a registry of areas, each shown only to the roles that may open it.

An area registers itself with its blueprint, so its link appears exactly when the blueprint is registered::

    bp = admin_blueprint("rules", __name__, url_prefix="/admin/rules")
    nav.add(bp, "Rules", "rules.index", order=20)

A link is shown to a role when the role meets both the item's ``role`` and the declaration of the view
it points at (:func:`server.web.access.requires`), so a link can never lead to a 403. An item whose
endpoint no blueprint registered is an error when the navigation is drawn, never a dead link.

Orders in use: Dashboard 0, Rules 20, Results 22, Templates 25, Contacts 30, Imports 32, Segments 35,
Messages 40, Forms 45, Broadcasts 47, Tasks 50, Users 80, Settings 85, Channels 87, API keys 90, Audit log 95.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, current_app, request, url_for
from flask.sansio.app import App

from ..models import Role
from .access import current_role, declared

_KEY = "nudge.nav"


@dataclass(frozen=True)
class NavItem:
    """One area in the navigation: its link text, the endpoint it opens, its place, the least role to see it."""

    label: str
    endpoint: str
    order: int = 100
    role: Role = Role.VIEWER


@dataclass(frozen=True)
class NavLink:
    """A navigation item as one person sees it on one page."""

    label: str
    url: str
    current: bool


def _registry(app: App) -> list[NavItem]:
    return app.extensions.setdefault(_KEY, [])


def add(target: Blueprint | Flask, label: str, endpoint: str, *, order: int = 100, role: Role = Role.VIEWER) -> None:
    """Register an area: with a blueprint, it appears when (and each time) that blueprint is registered."""
    item = NavItem(label, endpoint, order, role)
    if isinstance(target, Blueprint):
        target.record_once(lambda state: _register(state.app, item))
    else:
        _register(target, item)


def _register(app: App, item: NavItem) -> None:
    items = _registry(app)
    if any(existing.endpoint == item.endpoint for existing in items):
        raise ValueError(f"navigation: {item.endpoint} is registered twice")
    items.append(item)


def least_role(app: Flask, item: NavItem) -> Role:
    """The least role that sees *item*: its own, or its view's, whichever is higher.

    :raises LookupError: when no view has the item's endpoint (the link would be dead).
    """
    view = app.view_functions.get(item.endpoint)
    if view is None:
        raise LookupError(
            f"navigation item {item.label!r} points at {item.endpoint!r}, which no registered "
            "blueprint serves; register the blueprint or remove the item"
        )
    access = declared(view)
    if access is None or access.read is None:
        raise LookupError(f"navigation item {item.label!r} points at {item.endpoint!r}, which declares no role")
    return max(item.role, access.read, key=lambda r: r.rank)


def items(app: Flask) -> list[NavItem]:
    """Every registered item, in order."""
    return sorted(_registry(app), key=lambda i: (i.order, i.label))


def links_for(role: Role | None) -> list[NavLink]:
    """The links *role* sees, in order, the one for this page marked current."""
    if role is None:
        return []
    out, app = [], current_app
    for item in items(app):
        if not role.allows(least_role(app, item)):
            continue
        url = url_for(item.endpoint)
        out.append(NavLink(item.label, url, _is_current(item, url)))
    return out


def area_url(endpoint: str, **values: Any) -> str | None:
    """The URL of *endpoint* when an installed area serves it and the signed-in person may open it; else None.

    For links into other areas that may not be installed (the dashboard's links to Messages).
    """
    view = current_app.view_functions.get(endpoint)
    access, role = declared(view), current_role()
    if view is None or access is None or access.read is None or role is None or not role.allows(access.read):
        return None
    return url_for(endpoint, **values)


def _is_current(item: NavItem, url: str) -> bool:
    if request.endpoint == item.endpoint:
        return True
    # an area's pages live below its index (/admin/users/7 is in Users); the dashboard's / holds everything
    return url.rstrip("/") != "/admin" and request.path.startswith(url.rstrip("/") + "/")


def init_app(app: Flask) -> None:
    """Give templates ``nav_links()``: the current person's links."""

    @app.context_processor
    def _nav() -> dict[str, Any]:
        return {"nav_links": lambda: links_for(current_role())}


__all__ = ["NavItem", "NavLink", "add", "area_url", "init_app", "items", "least_role", "links_for"]
