"""A fresh clone holds everything its tests read (issue #9, 23): the scenario tests run in a copy of the
repository's files placed where no ``../shared`` exists, and none of them is skipped."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_the_scenario_tests_pass_in_a_clone_with_nothing_around_it(tmp_path):
    listed = (
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    clone = tmp_path / "clone"
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
    assert not (tmp_path / "shared").exists() and not (clone.parent.parent / "shared").exists()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUDGE_", "PYTEST_"))}
    env["PYTHONPATH"] = str(clone)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rs",
            "--backends",
            "sqlite",
            "tests/dsl/test_scenarios.py",
            "tests/engine/test_scenarios.py",
        ],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert "passed" in summary and "skipped" not in summary and "deselected" not in summary, summary
