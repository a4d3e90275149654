"""The engine's commands: ``nudge simulate`` errors and options, ``nudge apply``, ``nudge rules``, ``nudge explain``."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from server.cli import main

WELCOME = """\
rule "Welcome series"
when member.joined then
  send email welcome
  wait 3d
  if did class.attended within 3d then
    send email keep_going
  else
    send email getting_started
  end
  send sms reminder
end
"""
TIMELINE = [
    {"at": "2026-03-02T10:00:00Z", "contact": "ana", "set": {"email": "ana@example.com", "phone": "+4915112345678",
                                                             "timezone": "Europe/Berlin", "consent": {"sms": "granted"}}},
    {"at": "2026-03-02T21:00:00Z", "contact": "ana", "event": "member.joined"},
]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def simulate(tmp_path: Path, rules: str, timeline: list[dict] | str, *options: str):
    """``nudge simulate`` in-process; returns the result (``stdout`` and ``stderr`` apart)."""
    rules_file = write(tmp_path / "rules.nudge", rules)
    lines = timeline if isinstance(timeline, str) else "".join(json.dumps(line) + "\n" for line in timeline)
    timeline_file = write(tmp_path / "timeline.jsonl", lines)
    return CliRunner().invoke(main, ["simulate", str(rules_file), "--timeline", str(timeline_file), *options])


def effects(result) -> list[dict]:
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


# -- nudge simulate ---------------------------------------------------------------------------------------
def test_simulate_prints_each_effect_as_one_json_line(tmp_path):
    out = effects(simulate(tmp_path, WELCOME, TIMELINE))
    assert [(e["at"], e["action"], e.get("template")) for e in out] == [
        ("2026-03-02T21:00:00Z", "enter", None),
        ("2026-03-02T21:00:00Z", "send", "welcome"),
        ("2026-03-05T21:00:00Z", "send", "getting_started"),
        ("2026-03-06T07:00:00Z", "send", "reminder"),  # quiet hours: 08:00 in Berlin
        ("2026-03-06T07:00:00Z", "exit", None),
    ]


def test_simulate_bad_rules_exit_1_with_every_diagnostic(tmp_path):
    result = simulate(tmp_path, 'when member.joined then\n  sned email welcome\n  send fax hello\n', TIMELINE)
    assert result.exit_code == 1
    assert result.stdout == ""
    path = tmp_path / "rules.nudge"
    assert f"{path}:2:3: " in result.stderr and 'did you mean "send"' in result.stderr
    assert f"{path}:3:" in result.stderr, "every error in the file is reported"
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("line, message", [
    ('{"at": "2026-03-02T10:00:00Z", "contact": "ana", "event": "member.joined"', "not valid JSON"),
    ('{"at": "yesterday", "contact": "ana", "event": "member.joined"}', "is not an ISO-8601 time"),
    ('{"at": "2026-03-02T10:00:00", "contact": "ana", "event": "member.joined"}', "has no time zone"),
    ('{"at": "2026-03-02T10:00:00Z", "contact": "ana"}', "either 'set' or 'event'"),
    ('["at", "contact"]', "needs 'at', 'contact'"),
    ('{"at": "2026-03-02T10:00:00Z", "contact": "ana", "set": ["email"]}', "'set' must be an object"),
    ('{"at": "2026-03-02T10:00:00Z", "contact": "ana", "event": "x.y", "props": [1]}', "props must be an object"),
])
def test_simulate_malformed_timeline_line_is_one_readable_error_naming_it(tmp_path, line, message):
    good = json.dumps(TIMELINE[0])
    result = simulate(tmp_path, WELCOME, f"{good}\n\n{line}\n")
    assert result.exit_code == 1
    [error] = result.stderr.strip().splitlines()
    assert f"{tmp_path / 'timeline.jsonl'}:3: " in error and message in error
    assert result.stdout == ""


def test_simulate_stops_at_until(tmp_path):
    out = effects(simulate(tmp_path, WELCOME, TIMELINE, "--until", "2026-03-05T21:00:00Z"))
    assert [e.get("template") for e in out if e["action"] == "send"] == ["welcome", "getting_started"]
    out = effects(simulate(tmp_path, WELCOME, TIMELINE, "--until", "2026-03-05T20:59:59Z"))
    assert [e.get("template") for e in out if e["action"] == "send"] == ["welcome"]


def test_simulate_bad_until_is_a_readable_error(tmp_path):
    result = simulate(tmp_path, WELCOME, TIMELINE, "--until", "next week")
    assert result.exit_code == 1
    assert "--until" in result.stderr and "ISO-8601" in result.stderr and "Traceback" not in result.stderr


def test_simulate_trace_adds_the_engines_reasoning(tmp_path):
    plain = effects(simulate(tmp_path, WELCOME, TIMELINE))
    traced = effects(simulate(tmp_path, WELCOME, TIMELINE, "--trace"))
    assert [e for e in traced if e["action"] in {e["action"] for e in plain}] == plain
    reasoning = [(e["at"], e["action"], {k: v for k, v in e.items() if k not in ("at", "contact", "rule", "action")})
                 for e in traced if e not in plain]
    assert ("2026-03-02T21:00:00Z", "wait", {"until": "2026-03-05T21:00:00Z"}) in [
        (at, action, {k: v for k, v in data.items() if k == "until"}) for at, action, data in reasoning]
    [branch] = [data for _at, action, data in reasoning if action == "branch"]
    assert branch["taken"] is False and branch["cond"] == "did class.attended within 3d"
    [quiet] = [data for at, action, data in reasoning if action == "wait" and at == "2026-03-05T21:00:00Z"]
    assert quiet["until"] == "2026-03-06T07:00:00Z" and quiet["why"] == "quiet hours"


def test_simulate_honours_the_frequency_cap_setting(tmp_path):
    rules = 'rule "Promo"\n  always\nwhen promo.sent then\n  send email promo\nend\n'
    timeline = [TIMELINE[0]] + [{"at": f"2026-03-0{day}T10:00:00Z", "contact": "ana", "event": "promo.sent"}
                                for day in (3, 4, 5)]
    result = CliRunner(env={"NUDGE_FREQUENCY_CAP": "2/7d"}).invoke(
        main, ["simulate", str(write(tmp_path / "r.nudge", rules)), "--timeline",
               str(write(tmp_path / "t.jsonl", "".join(json.dumps(line) + "\n" for line in timeline)))])
    assert [(e["action"], e.get("reason")) for e in effects(result) if e["action"] != "enter" and e["action"] != "exit"] \
        == [("send", None), ("send", None), ("suppressed", "frequency_cap")]
