"""Roles on every admin endpoint: each declares the least role it needs, and each role gets exactly that.

The walk covers every URL rule under /admin and every view declared with ``requires`` elsewhere (plugins'
pages), GET and POST, with and without ``HX-Request``: an endpoint added later without a declaration fails here.
"""

from __future__ import annotations

import pytest
from flask import Blueprint

from server.models import Role
from server.web import nav
from server.web.access import admin_blueprint, declared, requires
from server.web.admin import login_required

from ..helpers import csrf_of, signed_in

#: the only admin endpoints anyone may use without signing in
PUBLIC = {"admin.login", "admin.logout"}
ROLES = [Role.VIEWER, Role.EDITOR, Role.ADMIN]


def admin_rules(app):
    """Every URL rule that is an admin page: under /admin, or whose view declares a role."""
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if rule.rule.startswith("/admin") or declared(view) is not None:
            yield rule


def _url(app, rule) -> str:
    # ids and names that match nothing: a permitted request is answered (404, 422, …), never carried out on data
    values = {a: 999_999 if f"<int:{a}>" in rule.rule else "no-such-thing" for a in rule.arguments}
    return app.url_map.bind("localhost").build(rule.endpoint, values)


def _ask(client, method, url, hx):
    headers = {"HX-Request": "true", "HX-Current-URL": "http://localhost/admin/"} if hx else {}
    token = getattr(client, "csrf", None)
    if method == "POST" and token:
        headers["X-CSRF-Token"] = token
    return client.open(url, method=method, headers=headers, data={} if method == "POST" else None)


def _signed_out(response, hx) -> bool:
    if hx:
        return response.status_code == 401 and "/admin/login" in response.headers.get("HX-Redirect", "")
    return response.status_code == 302 and "/admin/login" in response.headers["Location"]


def test_every_admin_endpoint_declares_a_role(app):
    undeclared = [rule.endpoint for rule in admin_rules(app) if declared(app.view_functions[rule.endpoint]) is None]
    assert not undeclared, f"admin endpoints without @requires(...) (or @public): {undeclared}"
    public = {rule.endpoint for rule in admin_rules(app) if declared(app.view_functions[rule.endpoint]).read is None}
    assert public == PUBLIC


def test_each_role_gets_exactly_what_each_endpoint_declares(app):
    anonymous = app.test_client()
    anonymous.csrf = csrf_of(anonymous)  # a real token: the refusal must come from the missing sign-in
    clients = {None: anonymous, **{role: signed_in(app, role.value) for role in ROLES}}
    checked = 0
    for rule in admin_rules(app):
        access = declared(app.view_functions[rule.endpoint])
        if rule.endpoint in PUBLIC:
            continue
        url = _url(app, rule)
        for method in ("GET", "POST"):
            if method not in rule.methods:
                continue
            needed = access.needed(method)
            assert method == "GET" or needed.allows(Role.EDITOR) or rule.endpoint == "admin.account", (
                f"{rule.endpoint}: a viewer may {method} it; only one's own account is writable by viewers"
            )
            for hx in (False, True):
                for role, client in clients.items():
                    response = _ask(client, method, url, hx)
                    where = f"{method} {url} as {role and role.value} (htmx: {hx}) -> {response.status_code}"
                    if role is None:
                        assert _signed_out(response, hx), where
                    elif role.allows(needed):
                        assert response.status_code not in (401, 403) and response.status_code < 500, where
                        assert not _signed_out(response, hx), where
                    else:
                        assert response.status_code == 403, where
                        if hx:
                            assert "nudge:flash" in response.headers["HX-Trigger"], where
                    checked += 1
    assert checked >= 4 * 2 * 3  # the walk really ran (dashboard and account at least)


def test_viewers_are_read_only_unless_the_view_is_their_own_account():
    @requires(Role.VIEWER)
    def page():
        return "ok"

    assert declared(page).read == Role.VIEWER and declared(page).write == Role.EDITOR
    assert declared(requires(Role.ADMIN)(page)).write == Role.ADMIN


def test_an_admin_route_without_a_declaration_is_refused_to_everyone(app):
    """A forgotten declaration fails closed, on a plain blueprint as on a protected one."""
    plain = Blueprint("stray", __name__, url_prefix="/admin/stray")
    plain.add_url_rule("/", "index", lambda: "open to all", methods=["GET", "POST"])
    guarded = admin_blueprint("forgot", __name__, url_prefix="/admin/forgot")
    guarded.add_url_rule("/", "index", lambda: "open to all")
    app.register_blueprint(plain)
    app.register_blueprint(guarded)
    admin = signed_in(app, "admin")
    for url in ("/admin/stray/", "/admin/forgot/"):
        for hx in (False, True):
            response = _ask(admin, "GET", url, hx)
            assert response.status_code == 500, url
            assert "open to all" not in response.get_data(as_text=True)
    assert _ask(admin, "POST", "/admin/stray/", False).status_code == 500
    with pytest.raises(AssertionError, match=r"stray.index"):
        test_every_admin_endpoint_declares_a_role(app)


def test_a_plugin_page_outside_admin_uses_the_same_roles(app):
    """``login_required`` (plugins' pages): sign-in needed, viewers read, editors change."""
    bp = Blueprint("plugin_page", __name__, url_prefix="/hooks/demo")
    bp.add_url_rule("/settings", "settings", login_required(lambda: "plugin settings"), methods=["GET", "POST"])
    app.register_blueprint(bp)
    anonymous = app.test_client()
    csrf_of(anonymous)
    response = anonymous.get("/hooks/demo/settings")
    assert response.status_code == 302 and "/admin/login" in response.headers["Location"]
    viewer, editor = signed_in(app, "viewer"), signed_in(app, "editor")
    assert viewer.get("/hooks/demo/settings").get_data(as_text=True) == "plugin settings"
    assert "script-src 'self'" in viewer.get("/hooks/demo/settings").headers["Content-Security-Policy"]
    assert _ask(viewer, "POST", "/hooks/demo/settings", False).status_code == 403
    assert _ask(editor, "POST", "/hooks/demo/settings", False).status_code == 200


def test_navigation_shows_each_role_only_the_areas_it_may_open(app):
    area = admin_blueprint("demo_area", __name__, url_prefix="/admin/demo")
    area.add_url_rule("/", "index", requires(Role.EDITOR)(lambda: "demo"))
    nav.add(area, "Demo area", "demo_area.index", order=25)
    app.register_blueprint(area)
    pages = {role: signed_in(app, role.value).get("/admin/").get_data(as_text=True) for role in ROLES}
    assert 'href="/admin/demo/"' not in pages[Role.VIEWER]
    assert 'href="/admin/demo/">Demo area</a>' in pages[Role.EDITOR]
    assert 'href="/admin/demo/">Demo area</a>' in pages[Role.ADMIN]
    assert 'aria-current="page">Dashboard</a>' in pages[Role.VIEWER]


def test_a_navigation_item_without_its_page_is_an_error_not_a_dead_link(app):
    nav.add(app, "Ghost", "ghost.index")
    with app.test_request_context("/admin/"), pytest.raises(LookupError, match=r"ghost.index"):
        nav.links_for(Role.ADMIN)


def test_a_plugin_declares_its_page_through_the_sdk_and_gets_the_same_check(app):
    from server.sdk import admin_page

    bp = Blueprint("sdk_page", __name__, url_prefix="/hooks/sdkdemo")
    bp.add_url_rule("/", "index", admin_page("viewer")(lambda: "sdk page"), methods=["GET", "POST"])
    bp.add_url_rule("/users", "users", admin_page("admin")(lambda: "admins only"))
    app.register_blueprint(bp)
    anonymous = app.test_client()
    assert "/admin/login" in anonymous.get("/hooks/sdkdemo/").headers["Location"]
    viewer, editor = signed_in(app, "viewer"), signed_in(app, "editor")
    page = viewer.get("/hooks/sdkdemo/")
    assert page.get_data(as_text=True) == "sdk page" and "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert _ask(viewer, "POST", "/hooks/sdkdemo/", False).status_code == 403
    assert _ask(editor, "POST", "/hooks/sdkdemo/", False).status_code == 200
    assert editor.get("/hooks/sdkdemo/users").status_code == 403
    with pytest.raises(ValueError, match=r"admin role 'owner' is not one of viewer, editor, admin"):
        admin_page("owner")
