"""``server.sdk`` is one import path for plugins, whatever modules it is made of: every name it lists and every
name docs/plugins.md imports from it is there, and its annotations resolve for tools that read them."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import server.sdk

ROOT = Path(__file__).resolve().parents[2]


def test_every_name_the_plugin_guide_imports_is_exported():
    guide = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    imported = set()
    for bracketed, one_line in re.findall(r"^from server\.sdk import (?:\(([^)]*)\)|([\w, ]+)$)", guide, re.M):
        imported |= {name.strip() for name in (bracketed or one_line).split(",") if name.strip()}
    assert imported and imported <= set(server.sdk.__all__), imported - set(server.sdk.__all__)
    assert all(hasattr(server.sdk, name) for name in server.sdk.__all__)


def test_the_annotations_of_the_plugin_api_resolve():
    for name in server.sdk.__all__:
        value = getattr(server.sdk, name)
        if isinstance(value, type) or callable(value):
            typing.get_type_hints(value)  # raises NameError for a name its module does not import
