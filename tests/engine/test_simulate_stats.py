"""`nudge simulate --stats`: the funnel of a simulated population, as `nudge stats` prints it for a live rule."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from server.cli import main

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "welcome_series"


def test_simulate_prints_each_rule_s_funnel():
    result = CliRunner().invoke(
        main,
        ["simulate", str(SCENARIO / "rules.nudge"), "--timeline", str(SCENARIO / "timeline.jsonl"), "--stats"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "rule 'Welcome series', version(s) 1: entered 2, waiting 0, completed 2, goal 0, stopped 0"
    rows = [(line[15:39].strip(), [int(n) for n in line[40:].split()[:7]]) for line in lines[2:]]
    # (what, [reached, waiting, passed, goal, done, stopped, sent]) per step, in the rule's order
    assert rows == [
        ("send welcome (line 4)", [0, 0, 0, 0, 0, 0, 2]),
        ("wait (line 5)", [2, 0, 2, 0, 0, 0, 0]),
        ("branch (line 6)", [2, 0, 0, 0, 0, 0, 0]),
        ("send keep_going (line 7)", [0, 0, 0, 0, 0, 0, 1]),  # ana attended a class
        ("jump (line 6)", [0, 0, 0, 0, 0, 0, 0]),
        ("send getting_started (li", [0, 0, 0, 0, 0, 0, 1]),  # ben did not
        ("wait (line 11)", [2, 0, 2, 0, 0, 0, 0]),
        ("send trainer_intro (line", [0, 0, 0, 0, 0, 0, 2]),
        ("exit (line 13)", [0, 0, 0, 0, 2, 0, 0]),
    ]
