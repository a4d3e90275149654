"""A hypothesis state machine over the live engine: contacts sign up and visit, opt out and back in, days pass,
workers and scheduler ticks run, jobs are duplicated or lost, the SMTP server refuses mail for a while.

Whatever the order: no email reaches a contact whose last opt-in or opt-out the system knows of was an opt-out,
no outbox key is sent twice, and once everything has drained each outbox row is ``sent``, ``failed``, ``unknown``
or ``suppressed``.
"""

from __future__ import annotations

import itertools
import sqlite3
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import func, select

from server.app import create_app
from server.clock import ShiftedClock
from server.consent import record_consent
from server.db import get_session
from server.engine.jobs import requeue_due
from server.engine.render import save_template
from server.models import Contact, Enrolment, EnrolmentState, Message
from server.queue import get_queue

from ..helpers import api_key, run_worker
from ..servers import SmtpServer, _Collector
from .journey import install_series

pytestmark = pytest.mark.slow

RULES = """rule "Drip"
when signup.completed then
  send email a
  wait 1d
  send email b
  wait 1d
  send email c
end

rule "Visit"
  always
when page.visited then
  send email v
end
"""
#: few people, so that the steps keep meeting the same contact
PEOPLE = ["p0@example.com", "p1@example.com"]
DAY = 86400
SETTLED = {"sent", "failed", "unknown", "suppressed"}


class ConsentWatch(_Collector):
    """Collects mail like the plain test server, and asks ``opted_out`` about each recipient the moment it arrives.

    The engine runs in the test's own thread, so nothing else changes while a message is handed over.
    """

    def __init__(self) -> None:
        super().__init__()
        self.opted_out: Callable[[str], bool] = lambda _email: False
        self.violations: list[str] = []

    async def handle_DATA(self, server, session, envelope):
        self.violations.extend(rcpt for rcpt in envelope.rcpt_tos if self.opted_out(rcpt))
        return await super().handle_DATA(server, session, envelope)


@dataclass
class Bench:
    """What every example shares: a migrated database with the rules to copy, Redis, the SMTP server."""

    template: Path
    config: dict
    smtp: SmtpServer
    examples: itertools.count = field(default_factory=itertools.count)


class EngineMachine(RuleBasedStateMachine):
    bench: Bench

    def __init__(self):
        super().__init__()
        bench = self.bench
        n = next(bench.examples)
        self.database = bench.template.with_name(f"example{n}.db")
        with closing(sqlite3.connect(bench.template)) as src, closing(sqlite3.connect(self.database)) as dst:
            src.backup(dst)
        handler = bench.smtp.handler
        with handler.cond:
            handler.messages.clear()
            handler.envelopes.clear()
        handler.violations.clear()
        handler.reject_with = None
        handler.opted_out = self.opted_out
        #: per contact, its consent actions in the order the test took them: ("grant" | "revoke", None) recorded
        #: at once, ("unsubscribe", event id) known to the system once a worker has processed the event
        self.consents: dict[str, list[tuple[str, int | None]]] = defaultdict(list)
        self.clock = ShiftedClock(self.database.with_suffix(".clock"))
        self.app = create_app(
            {
                **bench.config,
                "DATABASE_URL": f"sqlite:///{self.database}",
                "MIGRATE_ON_START": False,
                "QUEUE_NAME": f"machine-{n}-{uuid.uuid4().hex[:6]}",
            },
            clock=self.clock,
        )
        self.client = self.app.test_client()
        self.key = api_key(self.app)

    def opted_out(self, email: str) -> bool:
        """The model's answer: the last consent action the system can know of is an opt-out."""
        with closing(sqlite3.connect(self.database)) as conn:
            processed = {
                row[0]
                for row in conn.execute(
                    "SELECT id FROM events WHERE name = 'email.unsubscribed' AND processed_at IS NOT NULL"
                )
            }
        known = [kind for kind, event_id in self.consents[email] if event_id is None or event_id in processed]
        return bool(known) and known[-1] != "grant"

    # -- the world ------------------------------------------------------------------------------
    def _event(self, who: str, name: str) -> int:
        response = self.client.post(
            "/api/v1/events",
            headers={"Authorization": f"Bearer {self.key}"},
            json={"contact": {"email": who}, "event": name},
        )
        assert response.status_code == 202, response.json
        return response.json["id"]

    @rule(who=st.sampled_from(PEOPLE))
    def signs_up(self, who):
        self._event(who, "signup.completed")

    @rule(who=st.sampled_from(PEOPLE))
    def visits(self, who):
        self._event(who, "page.visited")

    @rule(who=st.sampled_from(PEOPLE))
    def unsubscribes(self, who):
        """The provider's unsubscribe event: consent is revoked when a worker processes it."""
        self.consents[who].append(("unsubscribe", self._event(who, "email.unsubscribed")))

    @rule(who=st.sampled_from(PEOPLE), granted=st.booleans())
    def consent_is_recorded(self, who, granted):
        """An opt-in (or opt-out) recorded at once, as the API and the preference page do."""
        with self.app.app_context():
            session = get_session()
            contact = session.scalar(select(Contact).where(Contact.email == who))
            if contact is not None:
                record_consent(session, contact.id, "email", granted, "api")
                self.consents[who].append(("grant" if granted else "revoke", None))
            session.commit()

    @rule(reply=st.sampled_from([None, "451 4.3.0 try again later", "550 5.1.1 no such user"]))
    def smtp_answers(self, reply):
        self.bench.smtp.handler.reject_with = reply

    # -- the machinery --------------------------------------------------------------------------
    @rule()
    def worker_runs(self):
        run_worker(self.app)

    @rule()
    def scheduler_ticks(self):
        with self.app.app_context():
            requeue_due()

    @rule()
    def a_day_passes(self):
        """The engine's clock moves on a day: waits, leases and retry back-offs end."""
        self.clock.advance(DAY)

    @rule()
    def jobs_are_duplicated(self):
        tq = get_queue(self.app)
        for queue in tq.queues:
            for job in [j for j in queue.get_jobs() if j is not None]:
                queue.enqueue(job.func_name, *job.args)

    @rule()
    def jobs_are_lost(self):
        get_queue(self.app).redis.flushall()

    # -- what must always hold ------------------------------------------------------------------
    @invariant()
    def no_email_after_opt_out(self):
        assert self.bench.smtp.handler.violations == []

    @invariant()
    def one_email_per_outbox_key(self):
        with self.bench.smtp.handler.cond:
            ids = Counter(str(m["Message-ID"]) for m in self.bench.smtp.handler.messages)
        assert not [i for i, n in ids.items() if n > 1], ids

    def teardown(self):
        try:
            self.bench.smtp.handler.reject_with = None
            for _ in range(12):  # back-offs of 8 attempts and two waits end within these days
                self.a_day_passes()
                self.scheduler_ticks()
                self.worker_runs()
                with self.app.app_context():
                    session = get_session()
                    active = session.scalar(select(func.count()).where(Enrolment.state == EnrolmentState.ACTIVE))
                    statuses = Counter(session.scalars(select(Message.status)))
                    session.rollback()
                if not active and set(statuses) <= SETTLED:
                    break
            assert not active and set(statuses) <= SETTLED, statuses
            self.no_email_after_opt_out()
            self.one_email_per_outbox_key()
        finally:
            get_queue(self.app).redis.flushall()
            self.app.extensions["nudge.queue"].close()
            self.app.extensions["nudge.db"].dispose()


@pytest.fixture
def bench(tmp_path, redis_server):
    smtp = SmtpServer()
    smtp.handler = ConsentWatch()
    smtp.start()
    config = {
        "HOME": str(tmp_path / "home"),
        "REDIS_URL": redis_server.url,
        "SMTP_URL": smtp.url,
        "SECRET_KEY": "test-secret-key-0123456789",
        "LOAD_ENTRY_POINTS": False,
        "REQUEUE_AFTER": 0.001,
        "ENGINE_LEASE": 60,
        "LOG_LEVEL": "ERROR",
        "POSTAL_ADDRESS": "1 Main Street",
    }
    template = tmp_path / "template.db"
    app = create_app({**config, "DATABASE_URL": f"sqlite:///{template}"})
    install_series(app, RULES)
    with app.app_context():
        save_template(get_session(), "email", "v", {"subject": "v", "txt": "Thanks for visiting"})
        get_session().commit()
    app.extensions["nudge.queue"].close()
    app.extensions["nudge.db"].dispose()
    yield Bench(template, config, smtp)
    smtp.stop()


def test_engine_keeps_its_promises_in_any_order(bench):
    EngineMachine.bench = bench
    run_state_machine_as_test(
        EngineMachine,
        settings=settings(
            max_examples=30,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


def test_an_unsubscribe_just_after_an_opt_in_stops_the_emails(bench):
    """Found by the machine: the engine dated the revocation with its whole-second clock, so it sorted before an
    opt-in made earlier in the same second, and the contact kept getting the series."""
    EngineMachine.bench = bench
    machine = EngineMachine()
    try:
        machine.signs_up(PEOPLE[0])
        machine.worker_runs()
        machine.consent_is_recorded(PEOPLE[0], granted=True)
        machine.unsubscribes(PEOPLE[0])
        machine.worker_runs()
        machine.a_day_passes()
        machine.scheduler_ticks()
        machine.worker_runs()
        assert [m["Subject"] for m in bench.smtp.messages] == ["a"]
        machine.no_email_after_opt_out()
    finally:
        machine.teardown()
