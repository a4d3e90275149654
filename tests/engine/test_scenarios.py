"""The shared worked examples of the ``nudge simulate`` contract, through the real CLI, compared by check.py."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SCENARIOS = ROOT.parent / "shared" / "scenarios"
FOLDERS = sorted(p for p in SCENARIOS.iterdir() if (p / "expected.jsonl").is_file()) if SCENARIOS.is_dir() else []


def _check_module():
    spec = importlib.util.spec_from_file_location("scenario_check", SCENARIOS / "check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def simulate_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server.cli", "simulate", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not SCENARIOS.is_dir(), reason=f"no shared scenarios at {SCENARIOS}")
@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
def test_scenario(folder):
    out = simulate_cli(str(folder / "rules.nudge"), "--timeline", str(folder / "timeline.jsonl"))
    assert out.returncode == 0, out.stderr
    actual = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    expected = [json.loads(line) for line in (folder / "expected.jsonl").read_text().splitlines() if line.strip()]
    problems = _check_module().compare(expected, actual)
    assert not problems, "\n".join(problems) + "\n\noutput:\n" + out.stdout


@pytest.mark.skipif(not SCENARIOS.is_dir(), reason=f"no shared scenarios at {SCENARIOS}")
def test_all_six_scenarios_are_found():
    assert {p.name for p in FOLDERS} >= {"lead_scoring", "one_liner", "trial_end", "trial_followup", "unsubscribe",
                                          "welcome_series"}
