"""A rule's or segment's regular expression cannot stall a worker (RE2: linear time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .regex_probe import HOSTILE

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_catastrophic_pattern_finishes_in_the_worker_and_in_segments(config):
    """Backtracking needs hours for this pattern on 200 characters; the child gets two minutes in all,
    start-up, migrations and the worker included (a hang detector, not a speed test)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tests.engine.regex_probe", json.dumps(config)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"matching {HOSTILE!r} against 200 characters did not finish: the engine backtracks")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["unprocessed"] == 0
    assert len(result["messages"]) == 1  # only the name ending in "b" matched
    assert result["segment_count"] == 1
    assert result["segment_members"] == ["ends-in-b@example.com"]


def test_the_checker_refuses_what_the_engine_cannot_run_with_line_and_column(runner, tmp_path):
    (tmp_path / "r.nudge").write_text(
        'rule "R"\n  always\nwhen form.submitted and contact.email matches "^(?!test)" then\n  tag "x"\nend\n'
    )
    result = runner.invoke(["check", str(tmp_path / "r.nudge")])
    assert result.exit_code != 0
    assert "r.nudge:3:47: the pattern uses lookahead or lookbehind" in result.output
    assert "RE2" in result.output and "hint: patterns are RE2 syntax" in result.output


def test_a_pattern_compiling_to_a_large_program_is_refused_and_never_run(runner, tmp_path):
    """RE2's time is the subject's length times the program's size: five ``\\w{1000}`` run 0.8 s a contact."""
    from dsl import safe_regex

    large = r"\w{1000}\w{1000}\w{1000}\w{1000}\w{1000}x"
    (tmp_path / "r.nudge").write_text(
        f'rule "R"\n  always\nwhen form.submitted and contact.email matches "{large}" then\n  tag "x"\nend\n'.replace(
            "\\", "\\\\"
        )
    )
    result = runner.invoke(["check", str(tmp_path / "r.nudge")])
    assert result.exit_code != 0
    assert "r.nudge:3:" in result.output and "compiles to 15,005 steps, more than 2,000" in result.output
    # a pattern stored before this limit is not run either: it matches nothing, as any refused pattern
    assert safe_regex.search(large, "a" * 10_000) is None
    assert safe_regex.search(r"\d{1000}", "1" * 1000) is True  # a single large count stays usable
