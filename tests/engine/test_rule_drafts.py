"""Drafts: a rule, or a new version of one, saved without activating it. The engine never runs a draft;
``nudge rules list`` and the API show them; each version records who saved it, and ``nudge apply`` records the
file a rule came from and keeps each rule's own text."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from server.db import get_session
from server.engine import editing
from server.engine.rules import RuleStateError, pause
from server.models import Enrolment, Rule, RuleStatus, RuleVersion

from ..helpers import api_key, load_rules, post_event, run_worker
from .test_cli_engine import LIVE_WELCOME, rule_table, rules_repo, write

WELCOME = 'rule "Welcome"\nwhen form.submitted then\n  send email welcome\nend\n'
DRAFT_ONLY = 'rule "Later"\nwhen form.submitted then\n  send email welcome\nend\n'


def _draft(app, text: str, actor: str = "ed@example.com") -> tuple[int, int]:
    """Save *text* as a draft exactly as the editor does; return (rule id, version number)."""
    with app.app_context():
        session = get_session()
        name = text.split('"')[1]
        rule = session.scalar(select(Rule).where(Rule.name == name))
        checked = editing.check_rule_text(session, app.extensions["nudge.plugins"], text, rule)
        assert checked.plan is not None, checked.diagnostics
        rule, version = editing.save_draft(session, rule, text, checked.plan, actor)
        session.commit()
        return rule.id, version.number


def _activate(app, rule_id: int, number: int, migrate: bool = False):
    with app.app_context():
        session = get_session()
        rule = session.get(Rule, rule_id)
        version = session.scalar(
            select(RuleVersion).where(RuleVersion.rule_id == rule_id, RuleVersion.number == number)
        )
        change = editing.activate(session, app, rule, version, migrate)
        session.commit()
        return change


def _enrolments(app) -> list[tuple[str, int]]:
    with app.app_context():
        session = get_session()
        return [
            (session.get(Rule, e.rule_id).name, session.get(RuleVersion, e.version_id).number)
            for e in session.scalars(select(Enrolment).order_by(Enrolment.id))
        ]


def test_a_draft_rule_never_runs_until_a_version_is_activated(app, client, smtp_server):
    rule_id, number = _draft(app, DRAFT_ONLY)
    with app.app_context():
        rule = get_session().get(Rule, rule_id)
        assert (rule.status, rule.active_version_id, rule.origin) == ("draft", None, "editor")
    key = api_key(app)
    assert post_event(client, key, email="ana@example.com").status_code == 202
    run_worker(app)
    assert _enrolments(app) == [] and smtp_server.messages == []

    change = _activate(app, rule_id, number)
    assert (change.action, change.version) == ("create", 1)
    assert post_event(client, key, email="ben@example.com").status_code == 202
    run_worker(app)
    assert _enrolments(app) == [("Later", 1)]
    assert [m["To"] for m in smtp_server.wait_for(1)] == ["ben@example.com"]


def test_a_draft_version_of_a_running_rule_does_not_replace_it(app, client):
    load_rules(app, WELCOME)
    with app.app_context():
        rule_id = get_session().scalar(select(Rule.id))
    _, number = _draft(app, WELCOME.replace("end\n", '  tag "welcomed"\nend\n'))
    assert number == 2
    assert post_event(client, api_key(app), email="ana@example.com").status_code == 202
    run_worker(app)
    assert _enrolments(app) == [("Welcome", 1)], "contacts enter the active version, never the draft"
    with app.app_context():
        rule = get_session().get(Rule, rule_id)
        assert rule.status == "active" and get_session().get(RuleVersion, rule.active_version_id).number == 1


def test_saving_the_same_text_again_makes_no_new_version(app):
    rule_id, _number = _draft(app, DRAFT_ONLY)
    with app.app_context():
        session = get_session()
        rule = session.get(Rule, rule_id)
        checked = editing.check_rule_text(session, app.extensions["nudge.plugins"], DRAFT_ONLY, rule)
        assert editing.save_draft(session, rule, DRAFT_ONLY, checked.plan, "ed@example.com") == (rule, None)
        assert session.scalar(select(func.count(RuleVersion.id))) == 1


def test_rules_list_and_the_api_show_drafts(app, client, runner):
    load_rules(app, WELCOME)
    _draft(app, WELCOME.replace("send email welcome", "send email welcome\n  wait 1d"))
    _draft(app, DRAFT_ONLY)
    assert rule_table(runner) == [
        ["Later", "draft", "-", "0 in flight", "draft v1"],
        ["Welcome", "active", "v1", "0 in flight", "draft v2"],
    ]
    headers = {"Authorization": f"Bearer {api_key(app, 'admin')}"}
    items = {r["name"]: r for r in client.get("/api/v1/rules", headers=headers).get_json()["items"]}
    assert (items["Later"]["status"], items["Later"]["version"], items["Later"]["draft_version"]) == ("draft", 0, 1)
    assert (items["Welcome"]["status"], items["Welcome"]["version"], items["Welcome"]["draft_version"]) == (
        "active",
        1,
        2,
    )
    versions = client.get(f"/api/v1/rules/{items['Welcome']['id']}/versions", headers=headers).get_json()["items"]
    assert [(v["number"], v["active"], v["draft"], v["actor"]) for v in versions] == [
        (2, False, True, "ed@example.com"),
        (1, True, False, None),
    ]
    assert versions[1]["activated_at"] is not None and versions[0]["activated_at"] is None


def test_a_draft_cannot_be_paused_or_resumed_and_says_why(app, client, runner):
    rule_id, _ = _draft(app, DRAFT_ONLY)
    result = runner.invoke(["rules", "pause", "Later"])
    assert result.exit_code == 1 and "rule 'Later' is a draft, never activated, so it cannot be paused" in result.output
    headers = {"Authorization": f"Bearer {api_key(app, 'admin')}"}
    answer = client.post(f"/api/v1/rules/{rule_id}/resume", headers=headers)
    assert answer.status_code == 409 and "cannot be resumed" in answer.get_json()["detail"]
    with app.app_context():
        assert get_session().get(Rule, rule_id).status == RuleStatus.DRAFT.value
        with pytest.raises(RuleStateError, match="activate a version of it first"):
            pause(get_session(), "Later")


def test_apply_keeps_each_rules_own_text_its_file_and_who_applied_it(app, runner, tmp_path):
    commented = "# Greets every new sign-up.\n" + LIVE_WELCOME
    repo = rules_repo(
        tmp_path / "repo",
        {
            "welcome.nudge": commented,
            "billing/sync.nudge": 'rule "Billing sync"\nwhen purchase.completed then\n'
            "  send webhook billing_sync\nend\n",
        },
    )
    assert runner.invoke(["apply", str(repo)]).exit_code == 0
    with app.app_context():
        session = get_session()
        rows = {r.name: r for r in session.scalars(select(Rule))}
        welcome = session.get(RuleVersion, rows["Welcome"].active_version_id)
        assert rows["Welcome"].origin == str(repo / "welcome.nudge")
        assert rows["Billing sync"].origin == str(repo / "billing/sync.nudge")
        assert welcome.source == commented, "the rule's own text, with the comment above it"
        assert welcome.actor == f"apply:{repo / 'welcome.nudge'}" and welcome.activated_at is not None
        assert "source" not in welcome.plan and "file" not in welcome.plan, "the plan stays the compiled rule"
    write(repo / "welcome.nudge", commented.replace("keep_going", "getting_started"))
    assert runner.invoke(["apply", str(repo)]).exit_code == 0
    assert rule_table(runner)[1] == ["Welcome", "active", "v2", "0 in flight"]


def test_the_api_records_its_key_as_the_author_of_a_version(app, client):
    key = api_key(app, "admin")
    answer = client.put("/api/v1/rules", json={"text": WELCOME}, headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.get_json()
    with app.app_context():
        version = get_session().scalar(select(RuleVersion))
        assert version.actor == f"api:{key.split('_')[2]}"  # nudge_<scope>_<prefix>_<secret>: the public prefix
        assert version.source == WELCOME and get_session().scalar(select(Rule.origin)) == "api"
