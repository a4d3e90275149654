"""SMS through the outbox to the local Twilio-speaking server (pacing off), next to plain ``requests`` posts.

The baseline posts the same form (To, From, Body, StatusCallback, Basic auth) to the same server over one
``requests.Session`` in the same run; the figure is what send jobs deliver from pending outbox rows (consent
checked, rendered, stamped, sent through the ``twilio`` library, recorded), with ``NUDGE_TWILIO_RATE=0``.
"""

from __future__ import annotations

import argparse
import time
from datetime import time as dt_time
from zoneinfo import ZoneInfo

import requests
from sqlalchemy import func, insert, select

from bench.common import bench_app
from bench.table import Row, ratio_at_least, render
from server.db import get_session
from server.engine.jobs import deliver_messages
from server.engine.timeutil import next_local_time
from server.models import Consent, Contact, Message, MessageStatus
from tests.plugins.twilio_server import TwilioServer

#: outbox rows per send job, as the scheduler hands them out
JOB = 1000
SENDER = "+15017122661"
CALLBACK = "http://127.0.0.1:9/sms/twilio/status"


def phones(n: int) -> list[str]:
    return [f"+1415{5550000 + i:07d}" for i in range(n)]


def requests_rate(twilio: TwilioServer, n: int) -> float:
    """Plain ``requests``: *n* message creations over one session; messages/s."""
    url = f"{twilio.url}/2010-04-01/Accounts/{twilio.account_sid}/Messages.json"
    with requests.Session() as session:
        session.auth = (twilio.account_sid, twilio.auth_token)
        start = time.perf_counter()
        for to in phones(n):
            body = {"To": to, "From": SENDER, "Body": "Hello there, thanks for signing up.", "StatusCallback": CALLBACK}
            session.post(url, data=body, timeout=30).raise_for_status()
        return n / (time.perf_counter() - start)


def nudge_rate(twilio: TwilioServer, n: int) -> float:
    """The outbox: *n* pending texts to consenting contacts, delivered by send jobs of :data:`JOB` rows; messages/s."""
    settings = {
        "TWILIO_API_BASE": twilio.url,
        "TWILIO_ACCOUNT_SID": twilio.account_sid,
        "TWILIO_AUTH_TOKEN": twilio.auth_token,
        "TWILIO_FROM": SENDER,
        "TWILIO_RATE": 0,
        "BASE_URL": "http://127.0.0.1:9",
    }
    noon = next_local_time(int(time.time()), dt_time(12, 0), ZoneInfo("America/Los_Angeles"))  # not quiet hours
    with bench_app(**settings) as app, app.app_context():
        session = get_session()
        session.execute(insert(Contact), [{"phone": phone, "fields": {}} for phone in phones(n)])
        contacts = list(session.scalars(select(Contact.id).order_by(Contact.id)))
        session.execute(
            insert(Consent),
            [{"contact_id": c, "channel": "sms", "status": "granted", "source": "bench"} for c in contacts],
        )
        session.execute(
            insert(Message),
            [{"key": f"broadcast:1:{c}", "contact_id": c, "channel": "sms", "template": "welcome"} for c in contacts],
        )
        session.commit()
        todo = list(session.scalars(select(Message.id).order_by(Message.id)))
        start = time.perf_counter()
        for first in range(0, n, JOB):
            deliver_messages(todo[first : first + JOB], now=noon)
        elapsed = time.perf_counter() - start
        sent = session.scalar(select(func.count(Message.id)).where(Message.status == MessageStatus.SENT.value))
        assert sent == n, f"{sent} of {n} sent"
    return n / elapsed


def measure(n: int) -> list[Row]:
    twilio = TwilioServer().start()
    try:
        base = requests_rate(twilio, n)
        figure = nudge_rate(twilio, n)
    finally:
        twilio.stop()
    assert len(twilio.messages) == 2 * n, f"the server created {len(twilio.messages)} messages, expected {2 * n}"
    path = f"SMS to a local Twilio-speaking server, {n:,} texts, pacing off"
    return [ratio_at_least(path, figure, "msg/s", base, "plain requests.Session posts", 0.5)]


def rows(full: bool) -> list[Row]:
    return measure(3_000 if full else 300)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    args = parser.parse_args()
    print(render(measure(args.messages)))
