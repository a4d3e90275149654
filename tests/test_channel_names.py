"""The core never tests a channel's name: a channel carries its behaviour as declarations its class makes.

Every built-in channel name (and its events, ``sms.opted_out``) is looked for in the code of ``server/`` and
``dsl/``: a string that is one, compared with a channel, passed as one or used as a default one. Prose (help
texts, docstrings, comments) may mention them, and ``DEFAULT_PLUGINS`` names the built-in plugins' modules.
``email`` is also a contact field, so it counts only where a channel is meant.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAMES = ("email", "sms", "webhook")
#: names that are nothing but channels; "email" is also the contact field, so it counts only where a channel is meant
ONLY_CHANNELS = {"sms", "webhook"}
EVENT = re.compile(rf"^({'|'.join(NAMES)})[.:]")
CHANNELISH = re.compile(r"\bch(annel)?s?\b|channel")


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            ids.add(id(body[0].value))
    return ids


def _channel_side(node: ast.AST) -> bool:
    return bool(CHANNELISH.search(ast.unparse(node))) and "address_field" not in ast.unparse(node)


def findings(path: Path) -> list[str]:
    """Where *path* names a built-in channel in code, as ``file:line: what``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = _docstrings(tree)
    where = path.relative_to(ROOT)
    found = []

    def flag(node: ast.AST, what: str) -> None:
        found.append(f"{where}:{node.lineno}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            text = node.value
            if text in ONLY_CHANNELS:
                flag(node, f"the channel name {text!r}")
            elif EVENT.match(text):
                flag(node, f"a channel's event or key {text!r}")
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            for side in sides:
                if (
                    isinstance(side, ast.Constant)
                    and side.value in NAMES
                    and any(_channel_side(other) for other in sides if other is not side)
                ):
                    flag(node, f"a channel compared with {side.value!r}")
        elif isinstance(node, ast.keyword) and node.arg and CHANNELISH.search(node.arg):
            if isinstance(node.value, ast.Constant) and node.value.value in NAMES:
                flag(node.value, f"{node.arg}={node.value.value!r}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and len(node.args) == 2
            and isinstance(node.args[0], ast.Constant)
            and CHANNELISH.fullmatch(str(node.args[0].value))
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in NAMES
        ):
            flag(node, f"a default channel {node.args[1].value!r}")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args.args + node.args.kwonlyargs
            defaults = (
                [None] * (len(node.args.args) - len(node.args.defaults)) + node.args.defaults + node.args.kw_defaults
            )
            for arg, default in zip(args, defaults, strict=True):
                if CHANNELISH.search(arg.arg) and isinstance(default, ast.Constant) and default.value in NAMES:
                    flag(default, f"a default channel {default.value!r} for {arg.arg}")
    return sorted(found, key=lambda line: int(line.split(":")[1]))


def core_findings() -> list[str]:
    return [
        line
        for folder in ("server", "dsl")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for line in findings(path)
    ]


def test_the_core_names_no_built_in_channel():
    assert core_findings() == []


def test_the_search_finds_each_way_of_naming_a_channel(tmp_path, monkeypatch):
    import sys

    module = tmp_path / "server" / "x.py"
    module.parent.mkdir()
    module.write_text(
        '"""Mentions email and sms in prose, which is fine."""\n'
        'DEFAULT_PLUGINS = ("plugins.sms_twilio",)\n'
        'if msg.channel == "sms":\n    pass\n'
        'CONSENT = {"email.unsubscribed": 1}\n'
        'channel = data.get("ch", "email")\n'
        'Form(channel="email")\n'
        'def render(channel: str = "email"): ...\n'
        'FIELDS = ("email", "phone")  # the contact field: fine\n'
        'if cls.address_field == "email":\n    pass\n'
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert [line.split(": ", 1)[0] for line in findings(module)] == [
        "server/x.py:3",
        "server/x.py:3",
        "server/x.py:5",
        "server/x.py:6",
        "server/x.py:7",
        "server/x.py:8",
    ]
