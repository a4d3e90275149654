"""``nudge check`` checks as ``nudge apply`` does, and warns on events nothing raises (issue #9, 27)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from sqlalchemy import select

from server.db import get_session
from server.engine.apply import apply_directory
from server.models import Contact

from ..helpers import api_key, run_worker
from .helpers import EXAMPLE, nudge


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def project(tmp_path: Path) -> Path:
    """A project folder with an instance in it, made the way a newcomer makes one."""
    folder = tmp_path / "project"
    folder.mkdir()
    created = nudge("db", "upgrade", cwd=folder)
    assert created.returncode == 0, created.stderr
    return folder


def test_check_and_apply_agree_on_a_broken_template(tmp_path):
    folder = project(tmp_path)
    rules = write(
        folder / "rules" / "promo" / "promo.nudge", 'rule "Promo"\nwhen form.submitted then\n  send email promo\nend\n'
    )
    write(folder / "rules" / "templates" / "email" / "promo.subject", "Hi {{ contcat.first_name }}")
    write(folder / "rules" / "templates" / "email" / "promo.txt", "Our offer")

    checked = nudge("check", "rules", cwd=folder)
    applied = nudge("apply", "rules", cwd=folder)
    problem = (
        f'{Path("rules") / "templates" / "email" / "promo"}: subject:1: unknown name "contcat" — '
        'did you mean "contact"?'
    )
    assert checked.returncode == 1 and applied.returncode == 1
    assert checked.stdout.splitlines()[0] == problem
    assert applied.stderr.splitlines()[0] == problem
    assert checked.stderr.strip() == "1 file, 1 rule: 1 error, 0 warnings"

    # fixed: the template in templates/ at the folder's root serves rules in sub-folders, for both
    write(folder / "rules" / "templates" / "email" / "promo.subject", "Hi {{ contact.first_name }}")
    checked = nudge("check", "rules", cwd=folder)
    assert checked.returncode == 0, checked.stdout
    assert checked.stdout == "1 file, 1 rule: no problems\n"
    applied = nudge("apply", "rules", cwd=folder)
    assert applied.returncode == 0, applied.stderr
    assert rules.exists() and "+ rule 'Promo' (new, v1)" in applied.stdout


TYPO = """\
rule "Typo"
when form.submited then
  send email welcome
end

rule "Plugin"
when push.opened then
  tag "pushed"
end

rule "Twice A"
when app.connected then
  tag "connected"
end
"""
TWICE = """\
rule "Twice B"
  until app.connected
when trial.started then
  tag "trial"
end
"""


def test_check_warns_on_events_nothing_raises_with_a_suggestion(tmp_path):
    write(tmp_path / "rules" / "a.nudge", TYPO)
    write(tmp_path / "rules" / "b.nudge", TWICE)
    result = nudge("check", "rules", cwd=tmp_path, env={"NUDGE_LOAD_ENTRY_POINTS": "true"})
    assert result.returncode == 0, result.stdout + result.stderr
    headlines = [line for line in result.stdout.splitlines() if ": warning: " in line]
    assert headlines == [
        f'{Path("rules") / "a.nudge"}:2:6: warning: nothing raises event "form.submited" — '
        'did you mean "form.submitted"?',
        f'{Path("rules") / "b.nudge"}:3:6: warning: nothing raises event "trial.started"',
    ]
    # push.opened is declared by a plugin, app.connected is named twice, form.submitted is Nudge's own
    assert result.stdout.endswith("2 files, 4 rules: no problems (2 warnings)\n")
    assert not (tmp_path / "nudge-data").exists(), "check never creates an instance"


def test_events_the_instance_received_are_known_to_check(app, client, config, tmp_path):
    key = api_key(app)
    response = client.post(
        "/api/v1/events",
        headers={"Authorization": f"Bearer {key}"},
        json={"contact": {"email": "ana@example.com"}, "event": "trial.started"},
    )
    assert response.status_code == 202
    write(
        tmp_path / "rules" / "a.nudge",
        'when trial.started then\n  tag "t"\nend\nwhen trial.startd then\n  tag "u"\nend\n',
    )
    result = nudge("check", "rules", cwd=tmp_path, env={f"NUDGE_{k}": str(v) for k, v in config.items()})
    assert result.returncode == 0, result.stdout + result.stderr
    headlines = [line for line in result.stdout.splitlines() if ": warning: " in line]
    assert headlines == [
        f'{Path("rules") / "a.nudge"}:4:6: warning: nothing raises event "trial.startd" — did you mean "trial.started"?'
    ]


def test_the_example_welcomes_each_contact_once(app, client, smtp_server, tmp_path):
    folder = shutil.copytree(EXAMPLE, tmp_path / "welcome")
    assert "once per contact" in (folder / "welcome.nudge").read_text()
    with app.app_context():
        result = apply_directory(get_session(), app, folder)
        assert result.warnings == []
    key = api_key(app)
    for form in ("newsletter", "trial"):
        response = client.post(
            "/api/v1/events",
            headers={"Authorization": f"Bearer {key}"},
            json={"contact": {"email": "ana@example.com"}, "event": "form.submitted", "props": {"form": form}},
        )
        assert response.status_code == 202
        run_worker(app)
    assert [m["To"] for m in smtp_server.wait_for(1)] == ["ana@example.com"]
    run_worker(app)
    assert len(smtp_server.messages) == 1, "one welcome, however many forms"
    with app.app_context():
        assert get_session().scalar(select(Contact.email)) == "ana@example.com"


def test_an_instance_not_migrated_yet_is_named_and_check_goes_on_without_it(tmp_path):
    (tmp_path / "nudge-data").mkdir()
    (tmp_path / "nudge-data" / "nudge.db").touch()
    result = nudge("check", str(EXAMPLE), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "1 file, 1 rule: no problems\n"
    assert result.stderr.strip().splitlines() == [
        "note: the instance cannot be used (no such table: segments; run `nudge db upgrade`); "
        "checking against the installed plugins only"
    ]
    with sqlite3.connect(tmp_path / "nudge-data" / "nudge.db") as db:
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == [], "check migrates nothing"


def test_start_naming_no_rule_is_an_error_with_a_suggestion(tmp_path):
    """A mistyped `start` would enrol nobody, silently: check refuses it, without an instance and with one."""
    qualify = 'rule "Qualify"\nwhen form.submitted then\n  start "Sales folow-up"\nend\n'
    follow_up = 'rule "Sales follow-up"\nwhen sales.requested then\n  note "call"\nend\n'
    loose = write(tmp_path / "loose" / "qualify.nudge", qualify + "\n" + follow_up)
    offline = nudge("check", str(loose), cwd=tmp_path)
    assert offline.returncode == 1, offline.stdout
    assert 'unknown rule "Sales folow-up" — did you mean "Sales follow-up"?' in offline.stdout

    folder = project(tmp_path)  # an instance: the rules of the folder, in two files, know each other
    write(folder / "rules" / "qualify.nudge", qualify.replace("folow-up", "follow-up"))
    write(folder / "rules" / "sales" / "follow_up.nudge", follow_up)
    assert nudge("check", "rules", cwd=folder).returncode == 0
    assert nudge("apply", "rules", cwd=folder).returncode == 0
    # a rule the instance has, started from a file checked on its own
    write(folder / "more" / "vip.nudge", 'rule "VIP"\nwhen vip.joined then\n  start "Sales follow-up"\nend\n')
    assert nudge("check", "more", cwd=folder).returncode == 0
    write(folder / "more" / "vip.nudge", 'rule "VIP"\nwhen vip.joined then\n  start "Sales followup"\nend\n')
    typo = nudge("check", "more", cwd=folder)
    assert typo.returncode == 1 and 'did you mean "Sales follow-up"?' in typo.stdout
