"""Modules stay small (the house style's "one concept per module"): a module of server/, dsl/ or plugins/
that grows past 600 lines is split into modules named for what they own, its public names re-exported."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 600
PACKAGES = ("server", "dsl", "plugins")


def oversized(root: Path) -> dict[str, int]:
    """The ``.py`` files under *root*'s packages longer than :data:`MAX_LINES`, by path, with their line counts."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > MAX_LINES:
                found[path.relative_to(root).as_posix()] = lines
    return found


def test_no_module_of_server_dsl_or_plugins_grows_over_600_lines():
    over = oversized(ROOT)
    assert over == {}, f"split these into modules named for what they own: {over}"


def test_the_check_finds_a_long_module_in_a_sub_package(tmp_path):
    """Guards the test above: a 601-line module three folders down is found, a 600-line one is not."""
    (tmp_path / "server" / "web" / "deep").mkdir(parents=True)
    (tmp_path / "server" / "web" / "deep" / "long.py").write_text("x = 1\n" * 601)
    (tmp_path / "dsl").mkdir()
    (tmp_path / "dsl" / "fine.py").write_text("x = 1\n" * 600)
    assert oversized(tmp_path) == {"server/web/deep/long.py": 601}
