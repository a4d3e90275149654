"""Operators resolve what is stuck: ``nudge messages`` lists failed, unknown and retrying sends with their errors,
``nudge explain`` shows each try, ``nudge messages resend`` and ``POST /api/v1/messages/resend`` send again, and
``NUDGE_AMBIGUOUS_SENDS=resend`` sends an ambiguous one again on its own. Against a real SMTP server that drops the
connection during DATA (the outcome is unknown), refuses the content, or defers every recipient."""

from __future__ import annotations

import pytest

from server.engine.jobs import requeue_due
from server.engine.timeutil import to_ts
from server.models import Message
from tests.servers import _Collector

from ..helpers import api_key, latest, post_event, run_worker
from .test_failures import install

THANKS = 'rule "Thanks"\nwhen order.paid then\n  send email thanks\nend\n'


class FlakySmtp(_Collector):
    """An SMTP server that, while ``drop`` is set, closes the connection once it has the data (the client never
    hears whether it was accepted), or answers DATA with ``refuse``."""

    def __init__(self) -> None:
        super().__init__()
        self.drop = False
        self.refuse: str | None = None
        self.dropped: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):
        if self.drop:
            self.dropped.append(envelope.content)
            server.transport.close()
            return "250 OK"  # never reaches the client
        if self.refuse:
            return self.refuse
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def smtp(smtp_server):
    """The test's SMTP server, restarted on its port with a handler that can drop or refuse."""
    smtp_server.stop()
    smtp_server.handler = FlakySmtp()
    return smtp_server.start()


def test_an_unknown_send_is_listed_explained_and_resent_from_the_cli(app, client, runner, smtp):
    install(app, client, THANKS)
    smtp.handler.drop = True
    post_event(client, api_key(app), email="ann@example.com", event="order.paid")
    run_worker(app)
    unknown = latest(app, Message)
    assert unknown.status == "unknown" and len(smtp.handler.dropped) == 1

    listing = runner.invoke(["messages"]).output
    assert (
        f"{unknown.id}\tunknown\temail/thanks\tann@example.com\tattempts=1\tthe SMTP connection dropped "
        "while sending the data" in listing
    )
    explained = runner.invoke(["explain", "ann@example.com"]).output
    assert (
        "Thanks: try 1 of email thanks: outcome unknown, the provider may have it: the SMTP connection "
        "dropped while sending the data" in explained
    )

    smtp.handler.drop = False
    result = runner.invoke(["messages", "resend", "--status", "unknown"])
    assert result.exit_code == 0 and result.output == f"1 message(s) queued to be sent again: {unknown.id}\n"
    run_worker(app)
    assert [m["To"] for m in smtp.wait_for(1)] == ["ann@example.com"]
    assert latest(app, Message).status == "sent"
    explained = runner.invoke(["explain", "ann@example.com"]).output
    assert "Thanks: email thanks pending: resend requested by cli" in explained

    again = runner.invoke(["messages", "resend", str(unknown.id)])
    assert again.exit_code == 1
    assert (
        f"nothing resent: message {unknown.id} is sent: only failed or unknown messages can be resent" in again.output
    )
    assert runner.invoke(["messages", "resend"]).exit_code == 2  # neither ids nor --status
    assert runner.invoke(["messages", "resend", "--status", "sent"]).exit_code == 2


def test_the_api_resends_failed_messages_with_an_admin_key_all_or_nothing(app, client, smtp):
    install(app, client, THANKS)
    key = api_key(app)
    post_event(client, key, email="sent@example.com", event="order.paid")
    run_worker(app)
    sent = latest(app, Message)
    smtp.handler.refuse = "554 5.6.0 message content refused"
    post_event(client, key, email="bea@example.com", event="order.paid")
    run_worker(app)
    failed = latest(app, Message)
    assert (sent.status, failed.status) == ("sent", "failed")
    admin = {"Authorization": f"Bearer {api_key(app, 'admin')}"}

    def resend(body, headers=admin):
        return client.post("/api/v1/messages/resend", json=body, headers=headers)

    for body, headers, status in [
        ({"ids": [failed.id]}, {}, 401),
        ({"ids": [failed.id]}, {"Authorization": f"Bearer {key}"}, 403),
        ({"ids": [failed.id, 999_999]}, admin, 404),
        ({"ids": [failed.id, sent.id]}, admin, 409),
        ({"ids": [failed.id], "status": "failed"}, admin, 422),
        ({}, admin, 422),
        ({"status": "sent"}, admin, 422),
        ({"ids": ["one"]}, admin, 422),
    ]:
        response = resend(body, headers)
        assert response.status_code == status, (body, response.json)
        assert response.mimetype == "application/problem+json"
    assert resend({"ids": [999_999]}).json["detail"] == "there is no message with id 999999"
    assert (
        resend({"ids": [sent.id]}).json["detail"]
        == f"message {sent.id} is sent: only failed or unknown messages can be resent"
    )
    assert latest(app, Message).status == "failed", "a refused request changes nothing"

    smtp.handler.refuse = None
    response = resend({"ids": [failed.id]})
    assert response.status_code == 200 and response.json == {"resent": [failed.id]}
    run_worker(app)
    assert [m["To"] for m in smtp.wait_for(2)] == ["sent@example.com", "bea@example.com"]
    history = client.get(f"/api/v1/messages/{failed.id}", headers=admin).json["history"]
    assert [h["status"] for h in history] == ["failed", "pending", "sent"]
    assert history[1]["detail"].startswith("resend requested by apikey:") and history[1]["source"] == "operator"


def test_plain_messages_lists_sends_that_are_retrying_with_their_last_error(app, client, runner, smtp):
    install(app, client, THANKS)
    smtp.handler.reject_with = "451 4.3.2 try again later"
    post_event(client, api_key(app), email="cid@example.com", event="order.paid")
    run_worker(app)
    retrying = latest(app, Message)
    assert (retrying.status, retrying.attempts) == ("pending", 1)
    listing = runner.invoke(["messages"]).output.splitlines()
    at = listing.index("# sends retrying")
    assert listing[at + 1].startswith(f"{retrying.id}\tpending\temail/thanks\tcid@example.com\tattempts=1\tnext try ")
    assert listing[at + 1].endswith("\tSMTP 451 at RCPT TO: 4.3.2 try again later")
    assert (
        "Thanks: try 1 of email thanks failed, to be tried again: SMTP 451 at RCPT TO: 4.3.2 try again later"
        in runner.invoke(["explain", "cid@example.com"]).output
    )


def test_with_ambiguous_sends_resend_an_ambiguous_send_goes_out_again_by_itself(app, client, smtp):
    app.config["AMBIGUOUS_SENDS"] = "resend"
    install(app, client, THANKS)
    smtp.handler.drop = True
    post_event(client, api_key(app), email="dan@example.com", event="order.paid")
    run_worker(app)
    retry = latest(app, Message)
    assert retry.status == "pending" and retry.error.endswith("sent again (NUDGE_AMBIGUOUS_SENDS=resend)")

    smtp.handler.drop = False
    with app.app_context():
        assert requeue_due(now=to_ts(retry.next_attempt_at) + 1)["messages"] == 1
    run_worker(app)
    assert latest(app, Message).status == "sent"
    # the trade-off: the server had the first copy too, so the recipient may get it twice
    assert len(smtp.handler.dropped) == 1 and [m["To"] for m in smtp.wait_for(1)] == ["dan@example.com"]
