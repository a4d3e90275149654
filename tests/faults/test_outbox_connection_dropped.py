"""The sending workers' PostgreSQL connections ended again and again (``pg_terminate_backend``: a failover, a restart)
while mail goes out, the database itself staying up: the outcome a worker knows (the relay accepted the mail) is
written again on a new connection, so every row ends ``sent``, none ``unknown``; and a claim or stamp lost with its
connection before the hand-over leaves a row that goes out later, once. Counted on what the SMTP server received."""

from __future__ import annotations

import time
import uuid
from collections import Counter

import pytest

from ..helpers import api_key
from .journey import counts, install_series, outbox, received, wait_until
from .test_database_outage import _terminate

pytestmark = [pytest.mark.slow, pytest.mark.postgresql]  # deselected unless --backends names postgresql

CONTACTS = 800
ONE_STEP = """rule "Series"
when signup.completed then
  send email a
end
"""
#: a row whose worker looks gone is settled within seconds (stranded: sent again; handed over: ``unknown``)
SETTINGS = {"SCHEDULER_INTERVAL": 0.2, "REQUEUE_AFTER": 3, "ENGINE_LEASE": 2, "RETRY_BASE": 1, "LOG_LEVEL": "WARNING"}


@pytest.fixture
def database_url(postgres_server, migrated_templates):
    return migrated_templates.new_pg_database(postgres_server, f"dropped_{uuid.uuid4().hex[:8]}")


@pytest.mark.timeout(240)
def test_connections_dropped_while_sending_leave_every_row_sent_and_every_mail_received_once(
    app, client, config, smtp_server, processes
):
    install_series(app, ONE_STEP)
    key = api_key(app)
    emails = [f"d{i:04d}@example.com" for i in range(CONTACTS)]
    for first in range(0, CONTACTS, 100):  # accepted before any worker runs: the connections die only while sending
        body = {"events": [{"contact": {"email": e}, "event": "signup.completed"} for e in emails[first : first + 100]]}
        response = client.post("/api/v1/events/batch", json=body, headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 202, response.get_data(as_text=True)[:2000]
    procs = processes(**SETTINGS)
    live = [procs.start("scheduler"), procs.start("worker"), procs.start("worker")]
    url = config["DATABASE_URL"]

    wait_until(lambda: len(smtp_server.messages) > 0, 60, lambda: f"{counts(app)}\n{procs.tail()}", every=0.05)
    kills = 0
    while len(smtp_server.messages) < CONTACTS * 0.9 and kills < 150:  # every connection, again and again
        _terminate(url)
        kills += 1
        time.sleep(0.05)

    def settled() -> bool:
        table = outbox(app)
        return len(table) == CONTACTS and not {"pending", "sending"} & set(table.values())

    wait_until(settled, 90, lambda: f"{counts(app)}\n{procs.tail()}", every=0.3)

    got = received(smtp_server)
    doubled = {pair: n for pair, n in got.items() if n > 1}
    assert not doubled, f"sent more than once: {sorted(doubled.items())[:10]}"
    table = outbox(app)
    assert set(table) == {(email, "a") for email in emails}
    assert Counter(table.values()) == {"sent": CONTACTS}, f"after {kills} kills: {Counter(table.values())}"
    lost = [pair for pair, status in table.items() if status == "sent" and not got[pair]]
    assert not lost, f"recorded as sent but never received: {lost[:10]}"
    assert set(got) == set(table)
    assert [p.poll() for p in live] == [None] * len(live), f"a process died:\n{procs.tail()}"
    logs = procs.tail(2000)
    assert "found an unhandled exception, quitting" not in logs, logs
    print(f"{kills} kills; rounds written again: {logs.count('written again')}")
