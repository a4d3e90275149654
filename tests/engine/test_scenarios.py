"""The worked examples of the ``nudge simulate`` contract (tests/scenarios), through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ..servers import reap
from .effects import compare

ROOT = Path(__file__).parents[2]
SCENARIOS = ROOT / "tests" / "scenarios"
#: the worked examples the docs promise; a missing one fails its test, it is never skipped
PROMISED = ("lead_scoring", "one_liner", "trial_end", "trial_followup", "unsubscribe", "welcome_series")
FOUND = {p.name for p in SCENARIOS.iterdir() if (p / "expected.jsonl").is_file()} if SCENARIOS.is_dir() else set()
FOLDERS = [SCENARIOS / name for name in sorted(FOUND | set(PROMISED))]
FILES = ("rules.nudge", "timeline.jsonl", "expected.jsonl")


@pytest.fixture(scope="module")
def runs():
    """``nudge simulate`` for every scenario, started all at once (each process mostly waits on imports)."""
    started = {
        folder.name: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "server.cli",
                "simulate",
                str(folder / "rules.nudge"),
                "--timeline",
                str(folder / "timeline.jsonl"),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for folder in FOLDERS
        if all((folder / name).is_file() for name in FILES)
    }
    yield started
    for process in started.values():
        # a scenario this worker did not run (xdist gives the others to other workers) was never read: its pipes
        # are closed too, or they are collected later as unclosed files (a ResourceWarning, an error in some other test)
        reap(process, timeout=0)


@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
def test_scenario(folder, runs):
    missing = [name for name in FILES if not (folder / name).is_file()]
    assert not missing, f"{folder} lacks {', '.join(missing)}: the scenarios ship with the repository (tests/scenarios)"
    stdout, stderr = runs[folder.name].communicate(timeout=120)
    assert runs[folder.name].returncode == 0, stderr
    actual = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    expected = [json.loads(line) for line in (folder / "expected.jsonl").read_text().splitlines() if line.strip()]
    problems = compare(expected, actual)
    assert not problems, "\n".join(problems) + "\n\noutput:\n" + stdout


def test_all_six_scenarios_are_found():
    assert SCENARIOS.is_dir(), f"{SCENARIOS} is missing: the scenarios ship with the repository"
    assert set(PROMISED) <= FOUND, f"missing scenarios: {sorted(set(PROMISED) - FOUND)}"
