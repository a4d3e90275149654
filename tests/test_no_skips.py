"""No test passes by being skipped: a skip, a module skipped at import and an empty parameter set all fail the
run, each saying what is missing; PostgreSQL-only tests are deselected, not skipped, by ``--backends``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pytest_on(tmp_path: Path, source: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run pytest, with the suite's own settings and conftest, on one test file holding *source*."""
    probe = tmp_path / "test_probe.py"
    probe.write_text(source, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.conftest",
            "-c",
            str(ROOT / "setup.cfg"),
            "--rootdir",
            str(tmp_path),
            "-q",
            *args,
            str(probe),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_test_skipped_for_a_missing_tool_fails(tmp_path):
    run = pytest_on(
        tmp_path,
        'import pytest\n\ndef test_bundle():\n    pytest.skip("node is not installed")\n\ndef test_fine():\n    pass\n',
    )
    assert run.returncode == 1, run.stdout
    assert "test_bundle was skipped (Skipped: node is not installed)" in run.stdout
    assert "`make test` installs everything" in run.stdout and "1 failed, 1 passed" in run.stdout


def test_a_skipif_fails_too(tmp_path):
    run = pytest_on(
        tmp_path,
        'import pytest\n\n@pytest.mark.skipif(True, reason="chromium is not installed")\ndef test_page():\n    pass\n',
    )
    assert run.returncode == 1 and "skipped (Skipped: chromium is not installed)" in run.stdout, run.stdout


def test_a_module_skipped_at_import_fails(tmp_path):
    run = pytest_on(
        tmp_path,
        'import pytest\n\nplaywright = pytest.importorskip("no_such_browser_driver")\n\ndef test_page():\n    pass\n',
    )
    assert run.returncode != 0 and "could not import 'no_such_browser_driver'" in run.stdout, run.stdout
    assert "install what it needs" in run.stdout


def test_cases_from_an_empty_folder_fail_at_collection(tmp_path):
    run = pytest_on(
        tmp_path,
        "from pathlib import Path\nimport pytest\n\n"
        'CASES = sorted(Path("gone").glob("*.nudge"))\n\n'
        '@pytest.mark.parametrize("case", CASES)\ndef test_case(case):\n    pass\n',
    )
    assert run.returncode != 0 and "Empty parameter set in 'test_case'" in run.stdout + run.stderr, run.stdout


def test_postgresql_only_tests_are_deselected_not_skipped(tmp_path):
    source = "import pytest\n\n@pytest.mark.postgresql\ndef test_race():\n    pass\n\ndef test_fine():\n    pass\n"
    run = pytest_on(tmp_path, source, "--backends", "sqlite")
    assert run.returncode == 0 and "1 passed, 1 deselected" in run.stdout and "skipped" not in run.stdout, run.stdout
