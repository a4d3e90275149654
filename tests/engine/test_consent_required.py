"""``NUDGE_CONSENT_REQUIRED``: a channel it names needs an opt-in for marketing sends, whatever it declares (GDPR
email). Journeys and broadcasts through the real outbox and SMTP server, ``nudge simulate``, and the refusal of a
name that is no channel with a consent rule; unset, email goes to everyone who has not opted out, as before."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from server.app import create_app
from server.cli import main
from server.config import ConfigError
from server.db import get_session
from server.models import Contact, Message, MessageStatusChange

from ..helpers import WELCOME_RULE, api_key, load_rules, post_event, run_worker
from ..web.test_forms import make_form


@pytest.fixture
def required():
    """The test's ``CONSENT_REQUIRED`` (None: unset); a test parametrizes it to change it."""
    return "email"


@pytest.fixture
def config(config, required):
    return {**config, "CONSENT_REQUIRED": required} if required else config


def _outcomes(app, email: str) -> list[tuple[str, str | None]]:
    """(status, the status history's last detail) of each outbox row of the contact at *email*, oldest first."""
    with app.app_context():
        session = get_session()
        contact_id = session.scalar(select(Contact.id).where(Contact.email == email))
        out = []
        for msg in session.scalars(select(Message).where(Message.contact_id == contact_id).order_by(Message.id)):
            detail = session.scalar(
                select(MessageStatusChange.detail)
                .where(MessageStatusChange.message_id == msg.id)
                .order_by(MessageStatusChange.id.desc())
            )
            out.append((msg.status, detail))
        return out


def _grant(app, client, email: str) -> None:
    """Record an opt-in as an integration does: ``POST /api/v1/contacts/<id>/consents``."""
    with app.app_context():
        contact_id = get_session().scalar(select(Contact.id).where(Contact.email == email))
    answer = client.post(
        f"/api/v1/contacts/{contact_id}/consents",
        json={"channel": "email", "granted": True, "source": "crm"},
        headers={"Authorization": f"Bearer {api_key(app, 'admin')}"},
    )
    assert answer.status_code == 201, answer.json


def test_a_contact_without_an_opt_in_gets_no_journey_email_until_one_is_granted(app, client, smtp_server):
    load_rules(app, WELCOME_RULE)
    key = api_key(app)
    assert post_event(client, key, "nia@example.com").status_code == 202
    run_worker(app)
    assert _outcomes(app, "nia@example.com") == [("suppressed", "no_consent")]
    assert smtp_server.messages == []

    _grant(app, client, "nia@example.com")
    assert post_event(client, key, "nia@example.com").status_code == 202
    run_worker(app)
    assert [m["To"] for m in smtp_server.wait_for(1)] == ["nia@example.com"]
    assert _outcomes(app, "nia@example.com") == [("suppressed", "no_consent"), ("sent", None)]


def test_a_pending_double_opt_in_gets_its_confirmation_but_no_broadcast_until_confirmed(
    app, client, runner, smtp_server
):
    make_form(app)
    assert client.post("/f/newsletter", data={"email": "lea@example.com", "consent": "yes"}).status_code == 303
    run_worker(app)
    [confirmation] = smtp_server.wait_for(1)  # transactional: exempt, as always
    assert confirmation["Subject"] == "Please confirm your subscription"
    with app.app_context():
        session = get_session()
        session.add(Contact(email="old@example.com", fields={}))  # imported long ago, never opted in
        session.commit()
    created = client.post(
        "/api/v1/segments",
        json={"name": "everyone", "condition": 'contact.email != ""'},
        headers={"Authorization": f"Bearer {api_key(app, 'admin')}"},
    )
    assert created.status_code == 201, created.json

    result = runner.invoke(["broadcast", "email", "welcome", "--segment", "everyone", "--id", "before"])
    assert result.exit_code == 0, result.output
    run_worker(app)
    assert len(smtp_server.messages) == 1  # only the confirmation
    assert _outcomes(app, "lea@example.com")[-1] == ("suppressed", "no_consent")
    assert _outcomes(app, "old@example.com") == [("suppressed", "no_consent")]

    body = confirmation.get_body(("plain",)).get_content()
    link = re.sub(r"^https?://[^/]+", "", re.search(r"https?://\S+/f/confirm/\S+", body).group(0))
    assert client.post(link).status_code == 200  # confirmed: the opt-in is on the ledger
    result = runner.invoke(["broadcast", "email", "welcome", "--segment", "everyone", "--id", "after"])
    assert result.exit_code == 0, result.output
    run_worker(app)
    assert [m["To"] for m in smtp_server.wait_for(2)][1:] == ["lea@example.com"]
    assert _outcomes(app, "old@example.com") == [("suppressed", "no_consent"), ("suppressed", "no_consent")]


@pytest.mark.parametrize("required", [None])
def test_unset_email_still_reaches_everyone_who_has_not_opted_out(app, client, smtp_server, required):
    assert app.config["CONSENT_REQUIRED"] is None
    load_rules(app, WELCOME_RULE)
    assert post_event(client, api_key(app), "nia@example.com").status_code == 202
    run_worker(app)
    assert [m["To"] for m in smtp_server.wait_for(1)] == ["nia@example.com"]
    assert _outcomes(app, "nia@example.com") == [("sent", None)]


@pytest.mark.parametrize(
    "value,message",
    [
        (
            "email,emial",
            "NUDGE_CONSENT_REQUIRED: names no installed channel that addresses contacts with a consent rule: emial; "
            "it can name: email, sms (unset it to follow each channel's own rule)",
        ),
        (
            "webhook",  # installed, but it addresses nobody: there is no one's consent to ask
            "NUDGE_CONSENT_REQUIRED: names no installed channel that addresses contacts with a consent rule: webhook; "
            "it can name: email, sms (unset it to follow each channel's own rule)",
        ),
        (
            "email;sms",
            "NUDGE_CONSENT_REQUIRED: expected comma-separated channel names, got 'email;sms' "
            "(e.g. email, or email,sms)",
        ),
    ],
)
@pytest.mark.parametrize("required", [None])
def test_a_name_that_is_no_channel_with_a_consent_rule_is_refused_at_start(config, required, value, message):
    with pytest.raises(ConfigError) as caught:
        create_app({**config, "CONSENT_REQUIRED": value})
    assert str(caught.value) == message


@pytest.mark.parametrize("required", [None])
def test_nudge_doctor_refuses_an_unknown_channel_with_the_same_message(app, runner, monkeypatch, required):
    monkeypatch.setenv("NUDGE_CONSENT_REQUIRED", "fax")
    result = runner.invoke(["doctor"])
    assert result.exit_code != 0
    assert "NUDGE_CONSENT_REQUIRED: names no installed channel that addresses contacts with a consent rule: fax; " in (
        result.output
    )


SIMULATED = 'rule "Promo"\n  always\nwhen promo.sent then\n  send email promo\nend\n'


def _simulate(tmp_path, consent: dict[str, str], env: dict[str, str]) -> list[tuple[str, str | None]]:
    """``nudge simulate`` in-process, with *env*: the sends and suppressions of one promo for a contact."""
    lines = [
        {"at": "2026-03-02T10:00:00Z", "contact": "ana", "set": {"email": "ana@example.com", "consent": consent}},
        {"at": "2026-03-02T11:00:00Z", "contact": "ana", "event": "promo.sent"},
    ]
    (tmp_path / "r.nudge").write_text(SIMULATED)
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = CliRunner(env=env).invoke(
        main, ["simulate", str(tmp_path / "r.nudge"), "--timeline", str(tmp_path / "t.jsonl")]
    )
    assert result.exit_code == 0, result.output
    effects = [json.loads(line) for line in result.stdout.splitlines()]
    return [(e["action"], e.get("reason")) for e in effects if e["action"] in ("send", "suppressed")]


def test_nudge_simulate_predicts_what_the_outbox_does(tmp_path):
    required = {"NUDGE_CONSENT_REQUIRED": "email"}
    assert _simulate(tmp_path, {}, required) == [("suppressed", "no_consent")]
    assert _simulate(tmp_path, {"email": "granted"}, required) == [("send", None)]
    assert _simulate(tmp_path, {"email": "revoked"}, required) == [("suppressed", "unsubscribed")]
    assert _simulate(tmp_path, {}, {}) == [("send", None)]  # unset: email needs no opt-in
