"""Activating a new version with --migrate: positions map by step identity, never by index."""

from sqlalchemy import select

from server.db import get_session
from server.models import Enrolment, RuleVersion

from ..helpers import api_key, post_event, run_worker

V1 = """rule "Drip"
when drip.started then
  send email one
  wait 1d
  send email two
  wait 1d
  send email three
end
"""
# a new first step shifts every index by one; step "send email two" keeps its identity
V2 = V1.replace("  send email one\n", '  tag "dripping"\n  send email one\n')
# "send email two" is gone: contacts waiting right before it cannot be placed
V3 = V2.replace("  send email two\n", "  send email two_b\n")


def _write(tmp_path, name, text):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "drip.nudge").write_text(text)
    templates = folder / "templates" / "email"
    templates.mkdir(parents=True)
    for name in ("one", "two", "two_b", "three"):
        (templates / f"{name}.subject").write_text(f"Drip {name}")
        (templates / f"{name}.txt").write_text(f"Hello {{{{ contact.email }}}}, this is {name}.")
    return str(folder)


def _positions(app):
    with app.app_context():
        session = get_session()
        out = []
        for enr in session.scalars(select(Enrolment).where(Enrolment.state == 0)):
            version = session.get(RuleVersion, enr.version_id)
            out.append((version.number, version.plan["steps"][enr.pc].get("name")))
        return sorted(out)


def test_migrate_moves_contacts_to_the_same_step_of_the_new_version(app, client, runner, tmp_path):
    assert runner.invoke(["apply", _write(tmp_path, "v1", V1)]).exit_code == 0
    key = api_key(app)
    for email in ("a@example.com", "b@example.com"):
        post_event(client, key, email=email, event="drip.started")
    run_worker(app)
    assert _positions(app) == [(1, "two"), (1, "two")]  # waiting 1d before "send email two"

    plan = runner.invoke(["apply", "--plan", _write(tmp_path, "v2plan", V2)])
    assert "→ v2 (2 contacts mid-journey)" in plan.output
    assert _positions(app) == [(1, "two"), (1, "two")]  # --plan changes nothing

    result = runner.invoke(["apply", "--migrate", _write(tmp_path, "v2", V2)])
    assert result.exit_code == 0, result.output
    assert "2 contact(s) moved to v2 at the same step" in result.output
    assert _positions(app) == [(2, "two"), (2, "two")]


def test_without_migrate_contacts_finish_on_their_version(app, client, runner, tmp_path):
    runner.invoke(["apply", _write(tmp_path, "v1", V1)])
    post_event(client, api_key(app), email="c@example.com", event="drip.started")
    run_worker(app)
    assert runner.invoke(["apply", _write(tmp_path, "v2", V2)]).exit_code == 0
    assert _positions(app) == [(1, "two")]


def test_unmappable_positions_are_reported_first_and_stay(app, client, runner, tmp_path):
    runner.invoke(["apply", _write(tmp_path, "v1", V1)])
    post_event(client, api_key(app), email="d@example.com", event="drip.started")
    run_worker(app)
    plan = runner.invoke(["apply", "--plan", "--migrate", _write(tmp_path, "v3plan", V3)])
    assert "1 contact(s) at step 3 cannot move: that step is gone" in plan.output
    result = runner.invoke(["apply", "--migrate", _write(tmp_path, "v3", V3)])
    assert result.exit_code == 0
    assert _positions(app) == [(1, "two")]


def test_messages_lists_failures_for_operators(app, client, runner, tmp_path, smtp_server):
    runner.invoke(["apply", _write(tmp_path, "v1", V1)])
    smtp_server.handler.reject_with = "550 5.1.1 no such user"
    post_event(client, api_key(app), email="gone@example.com", event="drip.started")
    run_worker(app)
    result = runner.invoke(["messages"])
    assert result.exit_code == 0
    assert "failed\temail/one\tgone@example.com" in result.output and "550" in result.output
    assert "no messages with status sent" in runner.invoke(["messages", "--status", "sent"]).output
