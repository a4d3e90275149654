"""The URL builders compiled once a process (server.web.routing): every app of the process builds the same URLs."""

from __future__ import annotations

from flask import Flask, url_for

from server.web.routing import NudgeFlask, SharedBuilderRule


def _view(**values: object) -> str:
    return ""


def _app(kind: type[Flask] = NudgeFlask) -> Flask:
    app = kind(__name__)
    app.add_url_rule("/c/<int:cid>/m/<path:rest>", "nested", _view)
    app.add_url_rule("/p/", "page", _view, defaults={"page": 1})
    app.add_url_rule("/p/<int:page>", "page", _view)
    app.add_url_rule("/q/<name>", "other", _view)
    return app


def _urls(app: Flask) -> list[str]:
    with app.test_request_context():
        return [
            url_for("nested", cid=7, rest="a b/c", x="1&2"),
            url_for("page"),
            url_for("page", page=3),
            url_for("other", name="ä/?"),
        ]


def test_rules_of_the_same_shape_share_one_builder_and_build_the_same_urls():
    first, second = _app(), _app()
    assert _urls(first) == _urls(second) == _urls(_app(Flask))  # as Werkzeug's own rules build them
    assert _urls(first)[:3] == ["/c/7/m/a%20b/c?x=1%262", "/p/", "/p/3"]

    def builders(app: Flask) -> dict[str, object]:
        return {rule.rule: rule._build.__func__ for rule in app.url_map.iter_rules()}

    shared, again = builders(first), builders(second)
    assert shared["/c/<int:cid>/m/<path:rest>"] is again["/c/<int:cid>/m/<path:rest>"]
    assert shared["/q/<name>"] is again["/q/<name>"]
    assert shared["/p/"] is not again["/p/"]  # a rule with defaults gets its own


def test_the_app_builds_its_routes_with_shared_builders(app):
    assert all(isinstance(rule, SharedBuilderRule) for rule in app.url_map.iter_rules())
