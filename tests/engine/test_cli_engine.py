"""The engine's commands: ``nudge simulate`` errors and options, ``nudge apply``, ``nudge rules``, ``nudge explain``."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from server.cli import main
from server.db import get_session
from server.engine.jobs import requeue_due
from server.engine.timeutil import to_ts
from server.models import Enrolment, EnrolmentState, Rule, RuleVersion, Template, WebhookEndpoint, utcnow

from ..helpers import api_key, post_event, run_worker

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
    {
        "at": "2026-03-02T10:00:00Z",
        "contact": "ana",
        "set": {
            "email": "ana@example.com",
            "phone": "+4915112345678",
            "timezone": "Europe/Berlin",
            "consent": {"sms": "granted"},
        },
    },
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
    result = simulate(tmp_path, "when member.joined then\n  sned email welcome\n  send fax hello\n", TIMELINE)
    assert result.exit_code == 1
    assert result.stdout == ""
    path = tmp_path / "rules.nudge"
    assert f"{path}:2:3: " in result.stderr and 'did you mean "send"' in result.stderr
    assert f"{path}:3:" in result.stderr, "every error in the file is reported"
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"at": "2026-03-02T10:00:00Z", "contact": "ana", "event": "member.joined"', "not valid JSON"),
        ('{"at": "yesterday", "contact": "ana", "event": "member.joined"}', "is not an ISO-8601 time"),
        ('{"at": "2026-03-02T10:00:00", "contact": "ana", "event": "member.joined"}', "has no time zone"),
        ('{"at": "2026-03-02T10:00:00Z", "contact": "ana"}', "either 'set' or 'event'"),
        ('["at", "contact"]', "needs 'at', 'contact'"),
        ('{"at": "2026-03-02T10:00:00Z", "contact": "ana", "set": ["email"]}', "'set' must be an object"),
        ('{"at": "2026-03-02T10:00:00Z", "contact": "ana", "event": "x.y", "props": [1]}', "props must be an object"),
    ],
)
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
    reasoning = [
        (e["at"], e["action"], {k: v for k, v in e.items() if k not in ("at", "contact", "rule", "action")})
        for e in traced
        if e not in plain
    ]
    assert ("2026-03-02T21:00:00Z", "wait", {"until": "2026-03-05T21:00:00Z"}) in [
        (at, action, {k: v for k, v in data.items() if k == "until"}) for at, action, data in reasoning
    ]
    [branch] = [data for _at, action, data in reasoning if action == "branch"]
    assert branch["taken"] is False and branch["cond"] == "did class.attended within 3d"
    [quiet] = [data for at, action, data in reasoning if action == "wait" and at == "2026-03-05T21:00:00Z"]
    assert quiet["until"] == "2026-03-06T07:00:00Z" and quiet["why"] == "quiet hours"


def test_simulate_honours_the_frequency_cap_setting(tmp_path):
    rules = 'rule "Promo"\n  always\nwhen promo.sent then\n  send email promo\nend\n'
    timeline = [TIMELINE[0]] + [
        {"at": f"2026-03-0{day}T10:00:00Z", "contact": "ana", "event": "promo.sent"} for day in (3, 4, 5)
    ]
    result = CliRunner(env={"NUDGE_FREQUENCY_CAP": "2/7d"}).invoke(
        main,
        [
            "simulate",
            str(write(tmp_path / "r.nudge", rules)),
            "--timeline",
            str(write(tmp_path / "t.jsonl", "".join(json.dumps(line) + "\n" for line in timeline))),
        ],
    )
    sends = [(e["action"], e.get("reason")) for e in effects(result) if e["action"] not in ("enter", "exit")]
    assert sends == [("send", None), ("send", None), ("suppressed", "frequency_cap")]


# -- nudge apply, nudge rules, nudge explain (live: real database, Redis, worker, SMTP) -------------------
# the same journey, started by a form and without the SMS (live tests send through a real SMTP server only)
LIVE_WELCOME = (
    WELCOME.replace('"Welcome series"', '"Welcome"')
    .replace("member.joined", "form.submitted")
    .replace("  send sms reminder\n", "")
)
BILLING = 'rule "Billing sync"\nwhen purchase.completed then\n  send webhook billing_sync\nend\n'
TEMPLATES = {
    "email/welcome.subject": "Welcome, {{ contact.first_name or 'friend' }}!",
    "email/welcome.txt": "Thanks for joining.",
    "email/welcome.html": "<p>Thanks for joining.</p>",
    "email/keep_going.subject": "Keep going",
    "email/keep_going.txt": "Great first class.",
    "email/getting_started.subject": "Getting started",
    "email/getting_started.txt": "Book your first class.",
    "sms/reminder.txt": "See you tomorrow!",
    "webhook/billing_sync.toml": 'url = "https://billing.example.com/hooks/nudge"\n'
    'secret = "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ="\n',
}


def rules_repo(root: Path, rules: dict[str, str], templates: dict[str, str] = TEMPLATES) -> Path:
    for name, text in {**rules, **{f"templates/{k}": v for k, v in templates.items()}}.items():
        write(root / name, text)
    return root


def rule_table(runner) -> list[list[str]]:
    result = runner.invoke(["rules", "list"])
    assert result.exit_code == 0, result.output
    return [line.split("\t") for line in result.output.splitlines()]


#: the welcome rules' wait, and a minute more
WAIT = timedelta(days=3, minutes=1)


def make_due(app, clock, delta: timedelta = WAIT) -> None:
    """Move the engine's clock on by *delta* (default past the welcome wait); run a scheduler tick and a worker."""
    clock.advance(delta)
    _tick(app)


def test_apply_plan_shows_the_changes_then_apply_makes_them(runner, app, tmp_path):
    repo = rules_repo(tmp_path / "repo", {"welcome.nudge": LIVE_WELCOME, "billing/sync.nudge": BILLING})
    plan = runner.invoke(["apply", "--plan", str(repo)])
    assert plan.exit_code == 0, plan.output
    assert "+ rule 'Welcome' (new, v1)" in plan.output and "+ rule 'Billing sync' (new, v1)" in plan.output
    assert "+ template email/welcome" in plan.output and "+ template sms/reminder" in plan.output
    assert "+ webhook endpoint billing_sync" in plan.output
    assert "Rules: 2 to add, 0 to change, 0 to pause." in plan.output
    assert plan.output.rstrip().endswith("(plan only: nothing was changed)")
    assert rule_table(runner) == [["no rules yet: write some and run `nudge apply DIR`"]]

    applied = runner.invoke(["apply", str(repo)])
    assert applied.exit_code == 0, applied.output
    assert "Rules: 2 to add" in applied.output and "plan only" not in applied.output
    assert rule_table(runner) == [
        ["Billing sync", "active", "v1", "0 in flight"],
        ["Welcome", "active", "v1", "0 in flight"],
    ]
    with app.app_context():
        session = get_session()
        welcome = session.scalar(select(Template).where(Template.channel == "email", Template.name == "welcome"))
        assert welcome.parts == {
            "subject": TEMPLATES["email/welcome.subject"],
            "txt": "Thanks for joining.",
            "html": "<p>Thanks for joining.</p>",
        }
        endpoint = session.scalar(select(WebhookEndpoint))
        assert endpoint.name == "billing_sync" and endpoint.url == "https://billing.example.com/hooks/nudge"

    again = runner.invoke(["apply", "--plan", str(repo)])
    assert "Rules: 0 to add, 0 to change, 0 to pause." in again.output and "template" not in again.output


def test_apply_with_a_missing_template_applies_nothing(runner, app, tmp_path):
    broken = LIVE_WELCOME.replace("send email getting_started", "send email getting_startd")
    repo = rules_repo(tmp_path / "repo", {"welcome.nudge": broken, "billing.nudge": BILLING})
    result = runner.invoke(["apply", str(repo)])
    assert result.exit_code == 1
    assert f"{repo / 'welcome.nudge'}:8:16: " in result.stderr and "getting_startd" in result.stderr
    assert "getting_started" in result.stderr, "the message suggests the template that exists"
    assert "nothing applied: 1 problem(s)" in result.stderr
    with app.app_context():
        session = get_session()
        assert session.scalar(select(func.count(Rule.id))) == 0
        assert session.scalar(select(func.count(Template.id))) == 0, "the valid templates are not applied either"
        assert session.scalar(select(func.count(WebhookEndpoint.id))) == 0


def test_changed_rule_gets_a_new_version_and_contacts_mid_journey_stay_on_theirs(
    runner, app, client, smtp_server, tmp_path, clock
):
    repo = rules_repo(tmp_path / "repo", {"welcome.nudge": LIVE_WELCOME})
    assert runner.invoke(["apply", str(repo)]).exit_code == 0
    key = api_key(app)
    assert post_event(client, key, email="early@example.com").status_code == 202
    run_worker(app)
    assert [m["Subject"] for m in smtp_server.wait_for(1)] == ["Welcome, friend!"]

    write(repo / "welcome.nudge", LIVE_WELCOME.replace("getting_started", "first_steps"))
    write(repo / "templates/email/first_steps.subject", "First steps")
    write(repo / "templates/email/first_steps.txt", "Here is how to begin.")
    plan = runner.invoke(["apply", "--plan", str(repo)])
    assert "~ rule 'Welcome' → v2 (1 contacts mid-journey)" in plan.output
    assert "+ template email/first_steps" in plan.output
    assert runner.invoke(["apply", str(repo)]).exit_code == 0
    assert rule_table(runner) == [["Welcome", "active", "v2", "1 in flight"]]

    assert post_event(client, key, email="late@example.com").status_code == 202
    run_worker(app)
    make_due(app, clock)
    subjects = {(m["To"], m["Subject"]) for m in smtp_server.wait_for(4)}
    assert ("early@example.com", "Getting started") in subjects, "the early contact finishes on version 1"
    assert ("late@example.com", "First steps") in subjects, "a new contact enters version 2"
    with app.app_context():
        session = get_session()
        numbers = dict(
            session.execute(
                select(Enrolment.contact_id, RuleVersion.number).join(
                    RuleVersion, RuleVersion.id == Enrolment.version_id
                )
            ).all()
        )
        assert sorted(numbers.values()) == [1, 2]


def test_a_rule_removed_from_the_folder_is_paused(runner, app, client, tmp_path):
    repo = rules_repo(tmp_path / "repo", {"welcome.nudge": LIVE_WELCOME, "billing.nudge": BILLING})
    assert runner.invoke(["apply", str(repo)]).exit_code == 0
    (repo / "billing.nudge").unlink()
    result = runner.invoke(["apply", str(repo)])
    assert result.exit_code == 0, result.output
    assert "- rule 'Billing sync' paused (no longer in the folder; 0 contacts mid-journey wait)" in result.output
    assert "Rules: 0 to add, 0 to change, 1 to pause." in result.output
    assert rule_table(runner) == [
        ["Billing sync", "paused", "v1", "0 in flight"],
        ["Welcome", "active", "v1", "0 in flight"],
    ]
    post_event(client, api_key(app), event="purchase.completed", total=10)
    run_worker(app)
    with app.app_context():
        assert get_session().scalar(select(func.count(Enrolment.id))) == 0


def test_rules_pause_and_resume(runner, app, client, smtp_server, tmp_path):
    assert runner.invoke(["apply", str(rules_repo(tmp_path / "repo", {"welcome.nudge": LIVE_WELCOME}))]).exit_code == 0
    paused = runner.invoke(["rules", "pause", "Welcome"])
    assert paused.exit_code == 0 and paused.output == "paused Welcome\n"
    assert rule_table(runner) == [["Welcome", "paused", "v1", "0 in flight"]]
    key = api_key(app)
    post_event(client, key, email="while-paused@example.com")
    run_worker(app)
    assert smtp_server.messages == []

    resumed = runner.invoke(["rules", "resume", "Welcome"])
    assert resumed.exit_code == 0 and resumed.output == "resumed Welcome\n"
    assert rule_table(runner) == [["Welcome", "active", "v1", "0 in flight"]]
    post_event(client, key, email="after@example.com")
    run_worker(app)
    assert [m["To"] for m in smtp_server.wait_for(1)] == ["after@example.com"]

    unknown = runner.invoke(["rules", "pause", "Welcom"])
    assert unknown.exit_code == 1 and "no rule named 'Welcom' (known rules: Welcome)" in unknown.stderr


def test_explain_tells_a_contacts_journey_after_a_live_run(clock, runner, app, client, smtp_server, tmp_path):
    assert runner.invoke(["apply", str(rules_repo(tmp_path / "repo", {"welcome.nudge": LIVE_WELCOME}))]).exit_code == 0
    post_event(client, api_key(app), email="ana@example.com")
    run_worker(app)
    waiting = runner.invoke(["explain", "ana@example.com"])
    assert waiting.exit_code == 0, waiting.output
    lines = waiting.output.splitlines()
    assert "Welcome: entered because form.submitted at " in lines[0]
    # live, the send is recorded when the outbox delivers it, just after the journey parked in its wait
    assert sorted(line.split("  ", 1)[1].split(" until ")[0] for line in lines[1:3]) == [
        "Welcome: sent email welcome",
        "Welcome: waited",
    ]
    assert [line for line in lines if line.endswith("(wait 3d)")]
    assert lines[-1].startswith("now waiting in Welcome until ")

    make_due(app, clock)
    smtp_server.wait_for(2)
    done = runner.invoke(["explain", "ana@example.com", "Welcome"]).output.splitlines()
    assert done[3].split("  ", 1)[1] == "Welcome: took `else` because `did class.attended within 3d` was false"
    assert sorted(line.split("  ", 1)[1] for line in done[4:]) == [
        "Welcome: finished the journey",
        "Welcome: sent email getting_started",
    ]
    missing = runner.invoke(["explain", "nobody@example.com"])
    assert missing.exit_code == 1 and "no contact with email, external id or id 'nobody@example.com'" in missing.stderr
    assert runner.invoke(["explain", "ana@example.com", "Nope"]).exit_code == 1


def _tick(app) -> None:
    with app.app_context():
        requeue_due()
    run_worker(app)


def test_pausing_a_rule_holds_its_contacts_mid_journey_until_resumed(runner, app, client, smtp_server, tmp_path, clock):
    assert runner.invoke(["apply", str(rules_repo(tmp_path / "repo", {"welcome.nudge": LIVE_WELCOME}))]).exit_code == 0
    post_event(client, api_key(app), email="ana@example.com")
    run_worker(app)
    smtp_server.wait_for(1)
    assert runner.invoke(["rules", "pause", "Welcome"]).exit_code == 0
    assert rule_table(runner) == [["Welcome", "paused", "v1", "1 in flight"]]
    make_due(app, clock)  # the 3 days pass while the rule is paused
    assert len(smtp_server.messages) == 1, "a paused rule sends nothing, also to contacts mid-journey"
    assert "now held in Welcome (paused) until " in runner.invoke(["explain", "ana@example.com"]).output

    assert runner.invoke(["rules", "resume", "Welcome"]).exit_code == 0
    _tick(app)
    assert [m["Subject"] for m in smtp_server.wait_for(2)] == ["Welcome, friend!", "Getting started"]
    assert rule_table(runner) == [["Welcome", "active", "v1", "0 in flight"]]


def test_a_goal_reached_while_the_rule_is_paused_still_ends_the_journey(
    runner, app, client, smtp_server, tmp_path, clock
):
    rules = LIVE_WELCOME.replace('rule "Welcome"\n', 'rule "Welcome"\n  until purchase.completed\n')
    assert runner.invoke(["apply", str(rules_repo(tmp_path / "repo", {"welcome.nudge": rules}))]).exit_code == 0
    key = api_key(app)
    post_event(client, key, email="ana@example.com")
    run_worker(app)
    assert runner.invoke(["rules", "pause", "Welcome"]).exit_code == 0
    post_event(client, key, email="ana@example.com", event="purchase.completed", total=30)
    run_worker(app)
    assert runner.invoke(["rules", "resume", "Welcome"]).exit_code == 0
    make_due(app, clock)
    assert [m["Subject"] for m in smtp_server.wait_for(1)] == ["Welcome, friend!"]
    assert runner.invoke(["explain", "ana@example.com"]).output.splitlines()[-1].endswith("left: reached the goal")


def test_resuming_a_rule_plans_its_schedule_again(clock, runner, app, client, tmp_path):
    from server.models import ScheduleTimer

    post_event(client, api_key(app), email="ana@example.com", event="page.visited")
    run_worker(app)
    daily = 'rule "Daily"\nwhen every day at 09:00 then\n  send email welcome\nend\n'
    assert runner.invoke(["apply", str(rules_repo(tmp_path / "repo", {"daily.nudge": daily}))]).exit_code == 0
    with app.app_context():
        assert get_session().scalar(select(func.count(ScheduleTimer.id))) == 1
    assert runner.invoke(["rules", "pause", "Daily"]).exit_code == 0
    make_due(app, clock, timedelta(days=1, minutes=1))  # its 09:00 passes while it is paused
    assert runner.invoke(["rules", "resume", "Daily"]).exit_code == 0
    with app.app_context():
        [timer] = get_session().scalars(select(ScheduleTimer)).all()
        assert timer.due > to_ts(utcnow()), "the next 09:00 is planned again"


def test_contacts_mid_journey_keep_the_goal_of_their_version(runner, app, client, tmp_path):
    repo = tmp_path / "repo"
    v1 = LIVE_WELCOME.replace('rule "Welcome"\n', 'rule "Welcome"\n  until purchase.completed\n')
    assert runner.invoke(["apply", str(rules_repo(repo, {"welcome.nudge": v1}))]).exit_code == 0
    key = api_key(app)
    post_event(client, key, email="ana@example.com")
    run_worker(app)
    write(repo / "welcome.nudge", v1.replace("until purchase.completed", "until trial.converted"))
    assert runner.invoke(["apply", str(repo)]).exit_code == 0
    post_event(client, key, email="ana@example.com", event="trial.converted")
    run_worker(app)
    assert rule_table(runner) == [["Welcome", "active", "v2", "1 in flight"]], "version 2's goal is not hers"
    post_event(client, key, email="ana@example.com", event="purchase.completed")
    run_worker(app)
    assert rule_table(runner) == [["Welcome", "active", "v2", "0 in flight"]]
    assert runner.invoke(["explain", "ana@example.com"]).output.splitlines()[-1].endswith("left: reached the goal")


def test_note_and_task_steps_leave_a_note_and_an_open_task_for_staff(runner, app, client, tmp_path):
    from server.models import Note, Task

    rules = (
        'rule "Hand-off"\nwhen form.submitted then\n  note "Asked for a {{ event.form }} call"\n'
        '  task "Call {{ contact.email }}" for "front-desk" due 1d\nend\n'
    )
    assert runner.invoke(["apply", str(rules_repo(tmp_path / "repo", {"handoff.nudge": rules}))]).exit_code == 0
    post_event(client, api_key(app), email="ana@example.com", form="demo")
    run_worker(app)
    with app.app_context():
        session = get_session()
        [note] = session.scalars(select(Note)).all()
        assert note.body == "Asked for a demo call" and note.author == "rule:Hand-off"
        [task] = session.scalars(select(Task)).all()
        assert (task.text, task.team, task.status, task.source) == (
            "Call ana@example.com",
            "front-desk",
            "open",
            "rule:Hand-off",
        )
        assert task.contact_id == note.contact_id
        assert 86000 < (task.due_at - task.created_at).total_seconds() <= 86400


@pytest.mark.parametrize("cap", ["3 per week", "3/7", "0/7d", "x/1d"])
def test_a_malformed_frequency_cap_is_one_line_naming_the_variable(tmp_path, cap):
    rules, timeline = write(tmp_path / "r.nudge", WELCOME), write(tmp_path / "t.jsonl", json.dumps(TIMELINE[0]))
    result = CliRunner(env={"NUDGE_FREQUENCY_CAP": cap}).invoke(
        main, ["simulate", str(rules), "--timeline", str(timeline)]
    )
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Error: NUDGE_FREQUENCY_CAP: must be a count and a window such as 3/7d")


def test_unnamed_rules_keep_their_names_when_the_folder_is_applied_from_elsewhere(runner, app, tmp_path):
    repo = rules_repo(
        tmp_path / "checkout-1", {"rules/one_liner.nudge": "when form.submitted then send email welcome\n"}
    )
    assert runner.invoke(["apply", str(repo)]).exit_code == 0
    assert rule_table(runner) == [["rules/one_liner.nudge:1", "active", "v1", "0 in flight"]]
    clone = tmp_path / "checkout-2"
    clone.symlink_to(repo)  # the same files at another path, as on a CI runner
    again = runner.invoke(["apply", "--plan", str(clone)])
    assert "Rules: 0 to add, 0 to change, 0 to pause." in again.output


def paused_with_one_held(runner, app, client, tmp_path):
    """The rules folder of Welcome, applied; a contact mid-journey in it, then the rule paused (she is held)."""
    repo = rules_repo(tmp_path / "repo", {"welcome.nudge": LIVE_WELCOME})
    assert runner.invoke(["apply", str(repo)]).exit_code == 0
    post_event(client, api_key(app), email="ana@example.com")
    run_worker(app)
    assert runner.invoke(["rules", "pause", "Welcome"]).exit_code == 0
    return repo


def test_contacts_held_by_a_pause_migrate_with_the_others(runner, app, client, smtp_server, tmp_path):
    repo = paused_with_one_held(runner, app, client, tmp_path)
    write(repo / "welcome.nudge", LIVE_WELCOME.replace("send email welcome", 'tag "new"\n  send email welcome'))
    result = runner.invoke(["apply", "--migrate", str(repo)])
    assert result.exit_code == 0, result.output
    assert "1 contact(s) moved to v2 at the same step" in result.output
    assert rule_table(runner) == [["Welcome", "active", "v2", "1 in flight"]]


def test_applying_a_paused_rule_unchanged_resumes_it_and_its_held_contacts(runner, app, client, smtp_server, tmp_path):
    repo = paused_with_one_held(runner, app, client, tmp_path)
    with app.app_context():
        assert get_session().scalar(select(Enrolment.state)) == EnrolmentState.HELD
    result = runner.invoke(["apply", str(repo)])
    assert result.exit_code == 0, result.output
    assert rule_table(runner) == [["Welcome", "active", "v1", "1 in flight"]]
    with app.app_context():
        assert get_session().scalar(select(Enrolment.state)) == EnrolmentState.ACTIVE


def test_in_segment_uses_the_stored_segment(runner, app, client, smtp_server, tmp_path):
    from server.models import Segment

    with app.app_context():
        session = get_session()
        session.add(Segment(name="VIP", condition='tag == "vip"'))
        session.commit()
    rules = 'rule "VIP welcome"\nwhen form.submitted and in segment "VIP" then\n  send email welcome\nend\n'
    assert runner.invoke(["apply", str(rules_repo(tmp_path / "repo", {"vip.nudge": rules}))]).exit_code == 0
    key = api_key(app)
    for email, tags in (("vip@example.com", ["vip"]), ("plain@example.com", [])):
        response = client.post(
            "/api/v1/events",
            headers={"Authorization": f"Bearer {key}"},
            json={"contact": {"email": email, "tags": tags}, "event": "form.submitted", "props": {}},
        )
        assert response.status_code == 202, response.json
    run_worker(app)
    assert [m["To"] for m in smtp_server.wait_for(1)] == ["vip@example.com"]


def test_apply_knows_the_custom_fields_and_segments_of_the_database(runner, app, tmp_path):
    from server.contacts.fields import define_field
    from server.models import Segment

    rules = (
        'rule "Renewal"\nwhen 7d before contact.renewal_date at 10:00 and in segment "VPI" then\n'
        "  send email welcome\nend\n"
    )
    repo = rules_repo(tmp_path / "repo", {"renewal.nudge": rules})
    with app.app_context():
        session = get_session()
        define_field(session, "renewal_date", "date")
        session.add(Segment(name="VIP", condition='tag == "vip"'))
        session.commit()
    result = runner.invoke(["apply", str(repo)])
    assert result.exit_code == 1
    assert 'unknown segment "VPI"' in result.stderr and '"VIP"' in result.stderr, result.stderr
    assert "unknown contact field" not in result.stderr, "a field defined in the database is known"
    write(repo / "renewal.nudge", rules.replace("VPI", "VIP"))
    assert runner.invoke(["apply", str(repo)]).exit_code == 0


def test_a_contact_without_a_time_zone_lives_in_the_instance_default(tmp_path):
    rules = write(
        tmp_path / "r.nudge", 'rule "Birthday"\nwhen anniversary of contact.birthday then\n  send email hb\nend\n'
    )
    timeline = write(
        tmp_path / "t.jsonl",
        json.dumps(
            {
                "at": "2026-01-05T00:00:00Z",
                "contact": "amy",
                "set": {"email": "a@example.com", "birthday": "1990-03-04"},
            }
        ),
    )
    result = CliRunner(env={"NUDGE_DEFAULT_TIMEZONE": "America/New_York"}).invoke(
        main, ["simulate", str(rules), "--timeline", str(timeline)]
    )
    assert [e["at"] for e in effects(result) if e["action"] == "send"] == ["2026-03-04T14:00:00Z"]  # 09:00 EST
