"""Forms, tracking links and unsubscribes hand their events to the engine as the API does: through the one
``process_pending`` job a Redis flag keeps waiting (server/engine/wake.py), not a job per event; the rules still
run, each event once, and a lost job still leaves the events to the scheduler."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from server.db import get_session
from server.engine.jobs import requeue_due
from server.engine.timeutil import to_ts
from server.links import click_url
from server.models import ContactTag, Enrolment, Event, utcnow

from ..helpers import load_rules, run_worker
from .conftest import HUMAN
from .test_forms import make_form

RULES = """rule "Lead"
when form.submitted then
  tag "lead"
end

rule "Clicker"
when email.clicked then
  tag "clicker"
end
"""

WAKE_JOB = "server.engine.wake.process_pending"


def _jobs(app) -> list[str]:
    return [job.func_name for job in app.extensions["nudge.queue"].queue.get_jobs()]


def _tagged(app, tag: str) -> int:
    with app.app_context():
        return get_session().scalar(select(func.count()).select_from(ContactTag).where(ContactTag.tag == tag))


def _pending(app) -> int:
    with app.app_context():
        return get_session().scalar(select(func.count()).select_from(Event).where(Event.processed_at.is_(None)))


def test_form_submissions_share_one_waiting_job_and_run_their_rule_once_each(app, client):
    load_rules(app, RULES)
    make_form(app, double_opt_in=False, redirect_url="https://example.com/thanks")
    for i in range(3):
        response = client.post("/f/newsletter", data={"email": f"f{i}@example.com", "consent": "on"})
        assert response.status_code == 303
    assert _jobs(app) == [WAKE_JOB], "three submissions, one waiting job"
    run_worker(app)
    assert _pending(app) == 0
    assert _tagged(app, "lead") == 3
    with app.app_context():
        assert get_session().scalar(select(func.count()).select_from(Enrolment)) == 3, "each submission enrolled once"
    assert _jobs(app) == []


def test_a_click_wakes_the_engine_and_runs_its_rule(app, client, public_id, sent_message):
    load_rules(app, RULES)
    with app.app_context():
        url = click_url(public_id, sent_message, "https://shop.example.com/pricing")
    path = re.sub(r"^https?://[^/]+", "", url)
    assert client.get(path, headers=HUMAN).status_code == 302
    assert client.get(path, headers=HUMAN).status_code == 302  # a second click: still the one waiting job
    assert _jobs(app) == [WAKE_JOB]
    run_worker(app)
    assert _pending(app) == 0
    assert _tagged(app, "clicker") == 1


def test_an_unsubscribe_wakes_the_engine(app, client, public_id, sent_message):
    from server.links import unsubscribe_url

    with app.app_context():
        path = re.sub(r"^https?://[^/]+", "", unsubscribe_url(public_id, "email", sent_message))
    assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert _jobs(app) == [WAKE_JOB]
    run_worker(app)
    assert _pending(app) == 0


def test_a_form_event_whose_job_was_lost_is_recovered_by_the_scheduler(app, client):
    load_rules(app, RULES)
    make_form(app, double_opt_in=False, redirect_url="https://example.com/thanks")
    assert client.post("/f/newsletter", data={"email": "lost@example.com", "consent": "on"}).status_code == 303
    app.extensions["nudge.queue"].queue.empty()  # the job is gone; its flag still says one waits
    assert client.post("/f/newsletter", data={"email": "late@example.com", "consent": "on"}).status_code == 303
    assert _jobs(app) == []  # the flag stood: no job of their own
    with app.app_context():
        later = to_ts(utcnow()) + app.config["REQUEUE_AFTER"] + 1
        assert requeue_due(now=later)["events"] == 2
    run_worker(app)
    assert _pending(app) == 0
    assert _tagged(app, "lead") == 2
