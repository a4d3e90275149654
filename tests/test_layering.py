"""Layers point one way: a wrong import arrow fails here."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imports_of(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def _violations(folder: str, forbidden: tuple[str, ...]):
    out = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for line, name in imports_of(path):
            if name.split(".")[0] in forbidden:
                out.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return out


def test_dsl_is_pure():
    assert _violations("dsl", ("server", "plugins", "flask", "sqlalchemy", "redis", "rq")) == []


def test_server_never_imports_plugins_directly():
    assert _violations("server", ("plugins",)) == []


def test_plugins_use_only_the_plugin_api():
    allowed = {"server.sdk", "server.hookspecs"}
    # built-in plugins' own endpoints may use these data-layer entry points
    allowed_prefixes = ("server.models", "server.db", "server.engine.ingest", "server.engine.jobs", "server.queue",
                        "server.api.problems", "server.config", "server.engine.render")
    bad = []
    for path in sorted((ROOT / "plugins").rglob("*.py")):
        for line, name in imports_of(path):
            if name.startswith("server") and name not in allowed and not name.startswith(allowed_prefixes):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert bad == []


def test_the_checker_catches_a_wrong_arrow(tmp_path, monkeypatch):
    bad = tmp_path / "dsl"
    bad.mkdir()
    (bad / "x.py").write_text("from server.models import Contact\n")
    import sys

    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert _violations("dsl", ("server",)) == ["dsl/x.py:1 imports server.models"]
