"""A third-party channel gets everything a built-in one gets: the example push plugin (examples/
nudge-example-push, installed by ``make test``), through ``nudge check``, ``nudge apply``, ``nudge simulate`` and
live to a local push gateway, with consent and quiet hours from its own declarations.

Time moves on the engine's clock: the jobs run with ``now`` (the worker carries it), never by waiting.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from server.db import get_session
from server.engine.apply import apply_directory
from server.engine.jobs import deliver_messages, process_events, requeue_due
from server.models import Consent, Contact, Event, JourneyLog, Message, Template
from server.queue import get_queue

from ..cli.helpers import nudge
from ..helpers import api_key, run_worker
from .push_gateway import PushGateway

RULES = 'rule "Shipped"\nwhen order.shipped then\n  send push shipped\nend\n'
TITLE = "Your order is on its way"
TEXT = "Hi {{ contact.first_name or 'there' }}, order {{ event.order }} has shipped."
NIGHT = "2030-05-01T23:30:00Z"  # inside the push channel's declared quiet hours, 22:00-07:00 (UTC here)
MORNING = "2030-05-02T07:00:00Z"  # when they end


def ts(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def project(root: Path, rules: str = RULES, parts: dict[str, str] | None = None) -> Path:
    folder = root / "shop"
    (folder / "templates" / "push").mkdir(parents=True)
    (folder / "rules.nudge").write_text(rules)
    for part, text in (parts or {"title": TITLE, "txt": TEXT}).items():
        (folder / "templates" / "push" / f"shipped.{part}").write_text(text)
    return folder


@pytest.fixture
def gateway():
    server = PushGateway().start()
    yield server
    server.stop()


@pytest.fixture
def config(config, gateway):
    return {
        **config,
        "LOAD_ENTRY_POINTS": True,
        "PUSH_GATEWAY_URL": gateway.url,
        "PUSH_API_KEY": "gw-key",
        "DEFAULT_TIMEZONE": "UTC",
    }


def test_nudge_check_knows_the_push_channel_its_parts_and_its_quiet_hours(tmp_path):
    """Offline (no instance): the checker gets the installed plugins' vocabulary, the push plugin's too."""
    env = {"NUDGE_LOAD_ENTRY_POINTS": "true"}
    good = nudge("check", str(project(tmp_path / "good")), cwd=tmp_path, env=env)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "`send push` in a rule without `quiet hours`" in good.stdout
    assert "default push quiet hours 22:00–07:00 apply" in good.stdout
    bad = nudge("check", str(project(tmp_path / "bad", parts={"subject": "Hi"})), cwd=tmp_path, env=env)
    assert bad.returncode == 1
    assert "shipped: subject: push templates have no part 'subject'; use title, txt" in bad.stdout
    assert "shipped: txt: a push template needs a txt" in bad.stdout
    without = nudge("check", str(project(tmp_path / "none")), cwd=tmp_path, env={"NUDGE_LOAD_ENTRY_POINTS": "false"})
    assert without.returncode == 1
    assert "shipped: channel: unknown channel 'push'; installed: email, sms, webhook" in without.stdout


def test_nudge_apply_stores_the_push_template(app, runner, tmp_path):
    result = runner.invoke(["apply", str(project(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "+ template push/shipped" in result.output
    with app.app_context():
        row = get_session().scalar(select(Template).where(Template.channel == "push"))
        assert (row.name, row.parts) == ("shipped", {"title": TITLE, "txt": TEXT})


def test_nudge_simulate_shows_push_sends_held_by_its_consent_and_quiet_hours(runner, tmp_path):
    folder = project(tmp_path)
    lines = [
        {"at": "2030-05-01T12:00:00Z", "contact": "ann", "set": {"consent": {"push": "granted"}}},
        {"at": "2030-05-01T12:00:00Z", "contact": "ann", "event": "order.shipped"},
        {"at": NIGHT, "contact": "bob", "set": {"consent": {"push": "granted"}}},
        {"at": NIGHT, "contact": "bob", "event": "order.shipped"},
        {"at": "2030-05-01T12:00:00Z", "contact": "cy", "event": "order.shipped"},
    ]
    timeline = tmp_path / "timeline.jsonl"
    timeline.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    result = runner.invoke(["simulate", str(folder / "rules.nudge"), "--timeline", str(timeline)])
    assert result.exit_code == 0, result.output
    effects = [json.loads(line) for line in result.output.splitlines()]
    sends = [
        (e["at"], e["contact"], e["action"], e.get("reason"))
        for e in effects
        if e["action"] in ("send", "suppressed") and e.get("channel") == "push"
    ]
    assert sends == [
        ("2030-05-01T12:00:00Z", "ann", "send", None),
        ("2030-05-01T12:00:00Z", "cy", "suppressed", "no_consent"),  # push needs an opt-in
        (MORNING, "bob", "send", None),
    ]  # held by the channel's own quiet hours


def test_push_is_delivered_live_once_with_its_consent_and_quiet_hours(app, client, gateway, tmp_path):
    with app.app_context():
        apply_directory(get_session(), app, project(tmp_path))
    key, admin = api_key(app), api_key(app, "admin")
    ann = client.post(
        "/api/v1/contacts",
        json={"external_id": "user-1", "first_name": "Ann"},
        headers={"Authorization": f"Bearer {admin}"},
    ).json["id"]
    granted = client.post(
        f"/api/v1/contacts/{ann}/consents",
        json={"channel": "push", "granted": True},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert granted.status_code == 201, granted.json
    for who in ("user-1", "user-2"):  # user-2 never allowed notifications
        posted = client.post(
            "/api/v1/events",
            json={"contact": {"external_id": who}, "event": "order.shipped", "props": {"order": "A-7"}},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert posted.status_code == 202, posted.json
    with app.app_context():
        events = list(get_session().scalars(select(Event.id).where(Event.name == "order.shipped")))
        pending = list(get_session().scalars(select(Event.id).where(Event.processed_at.is_(None))))
        assert set(events) <= set(pending)
        # the engine's clock at night: the job takes these and every other pending event (the consent grant's);
        # the jobs the API enqueued (wall clock) then find them taken
        assert process_events(events, now=ts(NIGHT)) == len(pending)
        waits = [row.data for row in get_session().scalars(select(JourneyLog).where(JourneyLog.action == "wait"))]
        assert {w["why"] for w in waits} == {"quiet hours"} and {w["until"] for w in waits} == {ts(MORNING)}
    run_worker(app)
    assert gateway.requests == []  # nothing at night
    with app.app_context():
        requeue_due(now=ts(MORNING))
    run_worker(app)
    with app.app_context():
        session = get_session()
        by_contact = {m.contact_id: m for m in session.scalars(select(Message).where(Message.channel == "push"))}
        bob = session.scalar(select(Contact.id).where(Contact.external_id == "user-2"))
        assert (by_contact[ann].status, by_contact[ann].provider_id) == ("sent", "push_1")
        assert (by_contact[bob].status, by_contact[bob].error) == ("suppressed", "no_consent")
        sent = by_contact[ann]
        get_queue(app).enqueue_send(deliver_messages, [sent.id, by_contact[bob].id], now=ts(MORNING))  # a duplicate
        requeue_due(now=ts(MORNING) + 60)
    run_worker(app)
    assert gateway.requests == [
        {
            "key": sent.key,
            "authorization": "Bearer gw-key",
            "to": "user-1",
            "title": TITLE,
            "body": "Hi Ann, order A-7 has shipped.",
        }
    ]  # exactly once, on the wire


def test_the_gateway_reports_through_the_plugin_api(app, client, gateway, tmp_path):
    """The plugin's own endpoint writes through server.sdk only: an open becomes push.opened, an opt-out
    revokes consent and stops the next notification."""
    test_push_is_delivered_live_once_with_its_consent_and_quiet_hours(app, client, gateway, tmp_path)
    with app.app_context():
        sent = get_session().scalar(select(Message).where(Message.channel == "push", Message.status == "sent"))
    auth = {"Authorization": "Bearer gw-key"}
    assert client.post("/hooks/push/report", json={"type": "opened", "message": "push_1"}).status_code == 401
    assert (
        client.post("/hooks/push/report", json={"type": "opened", "message": "push_1"}, headers=auth).status_code == 204
    )
    assert (
        client.post(
            "/hooks/push/report", json={"type": "opted_out", "user": "user-1", "id": "r-1"}, headers=auth
        ).status_code
        == 204
    )
    with app.app_context():
        session = get_session()
        opened = session.scalar(select(Event).where(Event.name == "push.opened"))
        assert opened.contact_id == sent.contact_id and opened.props["message"] == sent.key
        ledger = session.scalars(
            select(Consent.status).where(Consent.contact_id == sent.contact_id, Consent.channel == "push")
        ).all()
        assert ledger[-1] == "revoked"
        again = Message(
            key="after-opt-out",
            contact_id=sent.contact_id,
            channel="push",
            template="shipped",
            status="pending",
            data={},
        )
        session.add(again)
        session.commit()
        deliver_messages([again.id], now=ts(MORNING) + 3600)
        session.refresh(again)
        assert (again.status, again.error) == ("suppressed", "unsubscribed")
    assert len(gateway.requests) == 1
