"""What the apps of a process compile once and share (server.web.nudge_flask): URL builders and template code;
every app builds the same URLs and renders the same pages as on its own."""

from __future__ import annotations

import pytest
from flask import Flask, render_template, url_for
from jinja2 import Environment, TemplateAssertionError

from server.web.nudge_flask import NudgeFlask, SharedBuilderRule


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


def _render(folder, name: str, filters: dict | None = None) -> str:
    app = NudgeFlask(__name__, template_folder=str(folder))
    for filter_name, function in (filters or {}).items():
        app.add_template_filter(function, filter_name)
    with app.test_request_context():
        return render_template(name, who="<b>")


def test_a_template_is_compiled_once_a_process_and_again_when_its_source_changes(tmp_path, monkeypatch):
    compiled = []
    real = Environment.compile
    monkeypatch.setattr(
        Environment, "compile", lambda env, source, *a, **k: compiled.append(1) or real(env, source, *a, **k)
    )
    page = tmp_path / "page.html"
    page.write_text("Hello {{ who }}")
    assert _render(tmp_path, "page.html") == _render(tmp_path, "page.html") == "Hello &lt;b&gt;"  # still escaped
    assert len(compiled) == 1  # the second app took the first one's code
    page.write_text("Bye {{ who }}!")
    assert _render(tmp_path, "page.html") == "Bye &lt;b&gt;!" and len(compiled) == 2


def test_an_app_with_other_filters_compiles_the_template_for_itself(tmp_path):
    (tmp_path / "shout.html").write_text("{{ who | shout }}")
    assert _render(tmp_path, "shout.html", {"shout": lambda text: text.upper()}) == "&lt;B&gt;"
    with pytest.raises(TemplateAssertionError, match="No filter named 'shout'"):
        _render(tmp_path, "shout.html")  # not the code compiled where the filter existed
