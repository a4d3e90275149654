"""The example package's trigger and condition functions, installed from examples/ and found by the real ``nudge``."""

from __future__ import annotations

import json

from ..cli.helpers import ROOT, nudge

RULES = """rule "New features"
when app.opened and version_at_least(event.version, "2.0") then
  tag "sees new features"
end

rule "Company app users"
when app.installed and email_domain(contact.email) == "example.com" then
  tag "company app"
end
"""
TIMELINE = [
    {"at": "2026-03-02T10:00:00Z", "contact": "ana", "set": {"email": "ana@Example.COM"}},
    {"at": "2026-03-02T10:01:00Z", "contact": "bo", "set": {"email": "bo@other.org"}},
    {"at": "2026-03-02T11:00:00Z", "contact": "ana", "event": "app.installed"},
    {"at": "2026-03-02T11:00:00Z", "contact": "bo", "event": "app.installed"},
    {"at": "2026-03-02T12:00:00Z", "contact": "ana", "event": "app.opened", "props": {"version": "2.10.1"}},
    {"at": "2026-03-02T12:00:00Z", "contact": "bo", "event": "app.opened", "props": {"version": "1.9"}},
    {"at": "2026-03-02T13:00:00Z", "contact": "bo", "event": "app.opened", "props": {"version": "beta"}},
]


def test_nudge_check_knows_the_example_plugins_events_and_functions(tmp_path):
    (tmp_path / "rules.nudge").write_text(RULES)
    result = nudge("check", "rules.nudge", cwd=tmp_path)  # no instance here: the installed plugins give the names
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning" not in result.stdout + result.stderr
    (tmp_path / "typos.nudge").write_text(
        RULES.replace("app.opened", "app.opend").replace("version_at_least", "version_at_leest")
    )
    result = nudge("check", "typos.nudge", cwd=tmp_path)
    assert result.returncode == 1
    assert 'typos.nudge:2:6: warning: nothing raises event "app.opend" — did you mean "app.opened"?' in result.stdout
    assert 'typos.nudge:2:20: unknown function "version_at_leest" — did you mean "version_at_least"?' in result.stdout
    assert "hint: functions come from plugins; installed: email_domain, version_at_least" in result.stdout


def test_the_example_functions_run_in_the_engine_and_a_failure_is_traced(tmp_path):
    (tmp_path / "rules.nudge").write_text(RULES)
    (tmp_path / "timeline.jsonl").write_text("".join(json.dumps(line) + "\n" for line in TIMELINE))
    result = nudge("simulate", "rules.nudge", "--timeline", "timeline.jsonl", "--trace", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    effects = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["contact"], e["tag"]) for e in effects if e["action"] == "tag"] == [
        ("ana", "company app"),
        ("ana", "sees new features"),
    ]
    [failed] = [e for e in effects if e["action"] == "function_failed"]
    assert (failed["contact"], failed["rule"], failed["function"]) == ("bo", "New features", "version_at_least")
    assert failed["error"] == "ValueError: 'beta' is not a version such as 2.3.1"


def test_the_plugin_guide_shows_the_signals_module_as_it_is():
    guide = (ROOT / "docs" / "plugins.md").read_text()
    module = ROOT / "examples" / "nudge-example-push" / "nudge_example_push" / "signals.py"
    assert f"```python\n{module.read_text()}```" in guide
