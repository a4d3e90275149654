"""`notify` and `task` reach the team's members — by email at the real SMTP server, by a signed webhook call —
exactly once, even when the jobs are delivered twice; `nudge tasks` lists and closes the tasks."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from server.app import create_app
from server.config import ConfigError, load_config
from server.db import get_session
from server.engine.jobs import deliver_messages, process_events
from server.models import Event, Message, Task, WebhookEndpoint
from server.queue import get_queue

from ..helpers import api_key, load_rules, post_event, run_worker

DEMO_RULE = """rule "Demo requests"
when form.submitted then
  task "Book a demo with {{ contact.email }}" for "sales" due 1d
  notify "sales" "Demo request: {{ contact.email }}"
  notify "ops" "Someone wants a demo"
end
"""


@pytest.fixture
def config(config):
    return {**config, "TEAMS": "sales=ana@x.example, bob@x.example ;ops=webhook:ops-hook", "WEBHOOK_ALLOW": "127.0.0.1"}


@pytest.fixture
def team_app(app, receiver):
    server, secret = receiver
    with app.app_context():
        session = get_session()
        session.add(WebhookEndpoint(name="ops-hook", url=f"{server.url}/ops", secrets=[secret]))
        session.commit()
    load_rules(app, DEMO_RULE)
    return app


def redeliver(app) -> None:
    """Queue every job of the run again, as a queue that lost its acknowledgements would, and run them."""
    with app.app_context():
        session = get_session()
        events = list(session.scalars(select(Event.id)))
        messages = list(session.scalars(select(Message.id)))
    queue = get_queue(app)
    queue.enqueue(process_events, events)
    queue.enqueue_send(deliver_messages, messages)
    run_worker(app)


def test_notify_and_task_mail_each_member_of_the_team_once(team_app, smtp_server, receiver):
    app, client = team_app, team_app.test_client()
    # the lead unsubscribed from marketing email: internal mail about them still goes
    headers = {"Authorization": f"Bearer {api_key(app, 'admin')}"}
    lead = client.post("/api/v1/contacts", json={"email": "lead@example.com"}, headers=headers).json["id"]
    revoked = client.post(
        f"/api/v1/contacts/{lead}/consents", json={"channel": "email", "granted": False}, headers=headers
    )
    assert revoked.status_code == 201, revoked.json
    assert post_event(client, api_key(app), email="lead@example.com").status_code == 202
    run_worker(app)
    redeliver(app)
    redeliver(app)

    mails = smtp_server.wait_for(4)
    assert len(smtp_server.messages) == 4
    assert sorted(
        (rcpt[0], msg["Subject"]) for (_, rcpt), msg in zip(smtp_server.handler.envelopes, mails, strict=True)
    ) == [
        ("ana@x.example", "[Nudge] For sales: Demo request: lead@example.com"),
        ("ana@x.example", "[Nudge] New task for sales: Book a demo with lead@example.com"),
        ("bob@x.example", "[Nudge] For sales: Demo request: lead@example.com"),
        ("bob@x.example", "[Nudge] New task for sales: Book a demo with lead@example.com"),
    ]
    assert all(len(rcpt) == 1 for _, rcpt in smtp_server.handler.envelopes)  # never the contact, never together
    with app.app_context():
        [task] = get_session().scalars(select(Task)).all()
    task_mail = next(m for m in mails if "New task" in m["Subject"])
    body = task_mail.get_body(("plain",)).get_content()
    assert f"nudge tasks --done {task.id}" in body and "Rule: Demo requests" in body
    assert task_mail["List-Unsubscribe"] is None  # internal mail, not marketing

    server, secret = receiver
    [hit] = server.received
    assert hit.path == "/ops" and hit.verified_by == [secret]
    payload = json.loads(hit.body)
    assert payload["type"] == "nudge.notify"
    assert payload["data"]["internal"] == {
        "kind": "notify",
        "team": "ops",
        "to": "ops-hook",
        "text": "Someone wants a demo",
    }
    assert payload["data"]["contact"]["email"] == "lead@example.com"
    assert hit.headers["webhook-id"].startswith("team:")


def test_a_team_nobody_configured_notifies_nobody_and_says_so(app, smtp_server, caplog):
    load_rules(app, 'rule "Lonely"\nwhen form.submitted then\n  notify "marketing" "hello"\nend\n')
    assert post_event(app.test_client(), api_key(app), email="x@example.com").status_code == 202
    run_worker(app)
    assert "team 'marketing' is not configured in NUDGE_TEAMS" in caplog.text
    assert smtp_server.messages == []


def test_nudge_tasks_lists_open_tasks_and_closes_one(team_app, runner, smtp_server):
    for email in ("one@example.com", "two@example.com"):
        post_event(team_app.test_client(), api_key(team_app), email=email)
    run_worker(team_app)
    with team_app.app_context():
        first, second = get_session().scalars(select(Task.id).order_by(Task.id)).all()

    listed = runner.invoke(["tasks"])
    assert listed.exit_code == 0, listed.output
    assert "Book a demo with one@example.com" in listed.output and "Book a demo with two@example.com" in listed.output
    assert "sales" in listed.output
    assert "no open tasks for 'ops'" in runner.invoke(["tasks", "--team", "ops"]).output

    done = runner.invoke(["tasks", "--done", str(first)])
    assert done.exit_code == 0 and f"task {first} done" in done.output
    after = runner.invoke(["tasks", "--team", "sales"]).output
    assert "one@example.com" not in after and "two@example.com" in after
    assert f"task {first} is already done" in runner.invoke(["tasks", "--done", str(first)]).output
    missing = runner.invoke(["tasks", "--done", "999"])
    assert missing.exit_code == 1 and "no task 999" in missing.output
    with team_app.app_context():
        rows = {t.id: (t.status, t.completed_at is not None) for t in get_session().scalars(select(Task))}
    assert rows == {first: ("done", True), second: ("open", False)}


@pytest.mark.parametrize(
    "value, problem",
    [
        ("sales", "NUDGE_TEAMS: 'sales' has no '='"),
        ("sales=", "NUDGE_TEAMS: team 'sales' has no members"),
        ("sales=ana", "NUDGE_TEAMS: team 'sales': member 'ana' is neither an email address nor CHANNEL:TARGET"),
        ("ops=Web Hook:x", "NUDGE_TEAMS: team 'ops': member 'Web Hook:x' must be CHANNEL:TARGET"),
        ('{"sales": ', "NUDGE_TEAMS: is not valid JSON"),
        ('{"sales": []}', "NUDGE_TEAMS: team 'sales' has no members"),
    ],
)
def test_a_malformed_teams_setting_is_one_line_naming_the_variable(tmp_path, value, problem):
    with pytest.raises(ConfigError) as info:
        load_config({"HOME": str(tmp_path)}, environ={"NUDGE_TEAMS": value})
    assert str(info.value).startswith(problem) and "\n" not in str(info.value)


def test_teams_from_json_and_from_a_config_file_table(tmp_path):
    teams = load_config(
        {"HOME": str(tmp_path)}, environ={"NUDGE_TEAMS": '{"sales": ["a@x.example"], "ops": "webhook:ops-hook"}'}
    )["TEAMS"]
    assert {team: [str(m) for m in members] for team, members in teams.items()} == {
        "sales": ["a@x.example"],
        "ops": ["webhook:ops-hook"],
    }
    (tmp_path / "nudge.toml").write_text('[teams]\nsales = ["a@x.example", "b@x.example"]\nops = "webhook:ops-hook"\n')
    teams = load_config({"HOME": str(tmp_path)}, environ={})["TEAMS"]
    assert [str(m) for m in teams["sales"]] == ["a@x.example", "b@x.example"]


def test_a_member_on_a_channel_that_is_not_installed_stops_start_up(config):
    with pytest.raises(
        ConfigError, match="NUDGE_TEAMS: team 'ops': pager:night names the channel 'pager', which is not installed"
    ):
        create_app({**config, "TEAMS": "ops=pager:night"})


def test_team_mail_about_a_contact_does_not_use_up_the_contacts_frequency_cap(config, smtp_server):
    app = create_app({**config, "TEAMS": "sales=ana@x.example", "FREQUENCY_CAP": "1/7d"})
    try:
        load_rules(
            app, 'rule "Hot lead"\nwhen form.submitted then\n  notify "sales" "Hot lead"\n  send email welcome\nend\n'
        )
        assert post_event(app.test_client(), api_key(app), email="hot@example.com").status_code == 202
        run_worker(app)
        smtp_server.wait_for(2)
        assert sorted(rcpt[0] for _, rcpt in smtp_server.handler.envelopes) == ["ana@x.example", "hot@example.com"]
    finally:
        app.extensions["nudge.queue"].close()
        app.extensions["nudge.db"].dispose()
