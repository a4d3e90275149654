"""`nudge simulate --stats`: the funnel of a simulated population, as `nudge stats` prints it for a live rule."""

from __future__ import annotations

from pathlib import Path

import pytest
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


ENGAGED_RULES = """rule "Spring"
when member.joined then
  send email offer
  wait 2d
  send email reminder
end

rule "Clicked"
when email.clicked then
  tag "clicked"
end
"""


def _engaged(tmp_path, *lines: dict, stats: bool = False):
    from .test_cli_engine import simulate

    timeline = [
        {"at": "2026-03-02T10:00:00Z", "contact": "ana", "set": {"email": "ana@example.com"}},
        {"at": "2026-03-02T10:00:00Z", "contact": "ben", "set": {"email": "ben@example.com"}},
        {"at": "2026-03-02T10:05:00Z", "contact": "ana", "event": "member.joined"},
        {"at": "2026-03-02T10:05:00Z", "contact": "ben", "event": "member.joined"},
        *lines,
    ]
    return simulate(tmp_path, ENGAGED_RULES, timeline, *(["--stats"] if stats else []))


def test_timeline_opened_and_clicked_lines_reach_the_rules_and_the_funnel(tmp_path):
    lines = (
        {"at": "2026-03-02T12:00:00Z", "contact": "ana", "opened": "offer"},
        {"at": "2026-03-02T12:01:00Z", "contact": "ana", "clicked": "offer", "url": "https://shop.example/"},
        {"at": "2026-03-02T12:00:00Z", "contact": "ben", "opened": "offer", "machine": True},  # a proxy's prefetch
        {"at": "2026-03-02T12:00:01Z", "contact": "ben", "clicked": "offer", "machine": True},  # a scanner
        {"at": "2026-03-02T12:30:00Z", "contact": "ana", "event": "order.completed", "props": {"revenue": 20.5}},
    )
    from .test_cli_engine import effects

    out = effects(_engaged(tmp_path, *lines))
    engaged = [(e["contact"], e["action"], e["template"], e["machine"]) for e in out if e["action"] in ENGAGE]
    assert engaged == [
        ("ana", "opened", "offer", False),
        ("ben", "opened", "offer", True),
        ("ben", "clicked", "offer", True),
        ("ana", "clicked", "offer", False),
    ]
    # the person's click starts the "Clicked" rule; the scanner's does not
    assert [(e["contact"], e["rule"]) for e in out if e["action"] == "tag"] == [("ana", "Clicked")]
    clicked = next(i for i, e in enumerate(out) if e["action"] == "clicked" and e["contact"] == "ana")
    assert out[clicked + 1]["action"] == "enter" and out[clicked + 1]["rule"] == "Clicked"  # after what caused it

    result = _engaged(tmp_path, *lines, stats=True)
    assert result.exit_code == 0, result.stderr
    spring = result.stdout.split("rule 'Spring'")[1]
    assert "attributed: 1 conversion(s), revenue 20.5" in spring.splitlines()[0]
    [offer] = [line for line in spring.splitlines() if "send offer" in line]
    # SENT DELIV BOUNCED FAILED OPENED M.OPEN CLICKED UNSUB COMPL CONV REVENUE, after the six journey columns
    assert offer[40:].split()[6:] == ["2", "0", "0", "0", "1", "1", "1", "0", "0", "1", "20.5", "-"]


ENGAGE = ("opened", "clicked")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"at": "2026-03-02T12:00:00Z", "contact": "ana", "opened": "welcome"}, "'ana' was sent no 'welcome' message"),
        ({"at": "2026-03-02T10:01:00Z", "contact": "ana", "clicked": "offer"}, "'ana' was sent no 'offer' message"),
        ({"at": "2026-03-02T12:00:00Z", "contact": "cy", "opened": "offer"}, "names the template of a message"),
    ],
)
def test_an_open_or_click_of_no_message_is_a_clear_timeline_error(tmp_path, line, message):
    result = _engaged(tmp_path, line)
    assert result.exit_code != 0 and "timeline.jsonl:" in result.stderr and message in result.stderr


def test_did_clicked_within_counts_people_not_machines(tmp_path):
    """`did email.clicked within 1d` is true after a person's click, not after a scanner's (unless it asks)."""
    from .test_cli_engine import effects, simulate

    rules = ENGAGED_RULES.split('rule "Clicked"')[0] + (
        'rule "Follow"\nwhen order.placed then\n  if did email.clicked within 1d then\n    tag "engaged"\n'
        '  else\n    tag "cold"\n  end\nend\n\n'
        'rule "Scanned"\nwhen order.placed then\n'
        "  if did email.clicked where event.machine == true within 1d then\n"
        '    tag "scanned"\n  end\nend\n'
    )
    timeline = [
        {"at": "2026-03-02T10:00:00Z", "contact": "ana", "set": {"email": "ana@example.com"}},
        {"at": "2026-03-02T10:00:00Z", "contact": "ben", "set": {"email": "ben@example.com"}},
        {"at": "2026-03-02T10:05:00Z", "contact": "ana", "event": "member.joined"},
        {"at": "2026-03-02T10:05:00Z", "contact": "ben", "event": "member.joined"},
        {"at": "2026-03-02T12:00:00Z", "contact": "ana", "clicked": "offer"},
        {"at": "2026-03-02T12:00:00Z", "contact": "ben", "clicked": "offer", "machine": True},
        {"at": "2026-03-02T13:00:00Z", "contact": "ana", "event": "order.placed"},
        {"at": "2026-03-02T13:00:00Z", "contact": "ben", "event": "order.placed"},
    ]
    out = effects(simulate(tmp_path, rules, timeline))
    tags = sorted((e["contact"], e["tag"]) for e in out if e["action"] == "tag")
    assert tags == [("ana", "engaged"), ("ben", "cold"), ("ben", "scanned")]
