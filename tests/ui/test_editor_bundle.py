"""The committed rule editor bundle (server/static/dist/editor.js): built from the current sources, shipped with
the licenses of what it bundles. The bundle at work in a real Chromium is tested in tests/ui/editor/."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "server" / "assets"
BUNDLE = ROOT / "server" / "static" / "dist" / "editor.js"


def sources_stamp() -> str:
    """The sha256 build.mjs writes into the bundle: each source's path, byte length and bytes, sorted by path."""
    paths = ["build.mjs", "package-lock.json"] + [
        p.relative_to(ASSETS).as_posix() for p in (ASSETS / "src").rglob("*") if p.is_file()
    ]
    digest = hashlib.sha256()
    for path in sorted(p for p in paths if not p.endswith(".generated.js")):
        data = (ASSETS / path).read_bytes()
        digest.update(f"{path}\n{len(data)}\n".encode())
        digest.update(data)
    return digest.hexdigest()


def test_the_committed_bundle_is_built_from_the_current_sources():
    first_line = BUNDLE.read_text(encoding="utf-8").split("\n", 1)[0]
    stamp = re.search(r"sources-sha256:([0-9a-f]{64})", first_line)
    assert stamp, f"{BUNDLE} has no sources stamp: run `make assets`"
    assert stamp.group(1) == sources_stamp(), (
        "server/static/dist/editor.js is older than server/assets (src, build.mjs, package-lock.json): "
        "run `make assets` and commit the bundle"
    )


def test_the_bundle_ships_with_the_licenses_of_what_it_bundles():
    licenses = (BUNDLE.parent / "editor.js.LICENSES.txt").read_text(encoding="utf-8")
    for package in ("@codemirror/view", "@codemirror/merge", "@lezer/lr", "style-mod"):
        assert re.search(rf"^{re.escape(package)} \S+ \(MIT\)$", licenses, re.M), package
    assert "Permission is hereby granted" in licenses
    assert "editor.js.LICENSES.txt" in BUNDLE.read_text(encoding="utf-8").split("\n", 1)[0]
