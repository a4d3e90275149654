"""PostgreSQL: a worker's stats rollup after its job passes over a source another rollup is folding.

Two workers both folding the same new trace lines would read them twice and the second would then wait on the
first's lock only to find them counted: the second now leaves the source to the first, and nothing is counted
twice or lost (the next job folds what is left)."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import func, select

from server.db import get_session
from server.engine.jobs import process_events
from server.engine.rollup import rollup
from server.models import Event, StatCounter, StatWatermark

from ..helpers import api_key, load_rules, lock_waiters, post_event

pytestmark = pytest.mark.postgresql  # deselected unless --backends names postgresql

RULE = """rule "Lead"
when form.submitted then
  tag "lead"
end
"""


@pytest.fixture
def database_url(postgres_server):
    """PostgreSQL only: SQLite has one writer, whose rollups never overlap."""
    return postgres_server.new_database(f"rollup_{uuid.uuid4().hex[:8]}")


def _entered(app) -> int:
    with app.app_context():
        entered = select(func.coalesce(func.sum(StatCounter.count), 0)).where(StatCounter.metric == "entered")
        return get_session().scalar(entered)


def test_a_job_leaves_a_source_another_rollup_holds_and_nothing_is_counted_twice(app, client):
    load_rules(app, RULE)
    key = api_key(app)
    for i in range(2):
        assert post_event(client, key, email=f"a{i}@example.com").status_code == 202
    with app.app_context():
        assert process_events([]) == 2
        rollup(get_session(), limit=None)  # every source has its watermark
    assert _entered(app) == 2
    for i in range(3):
        assert post_event(client, key, email=f"b{i}@example.com").status_code == 202

    with app.app_context():
        engine = get_session().get_bind()
    other = engine.connect()  # another worker's rollup, folding the journey trace now
    other.execute(select(StatWatermark.last_id).where(StatWatermark.source == "journey_log").with_for_update())
    outcome: dict[str, object] = {}

    def job() -> None:
        with app.app_context():
            try:
                outcome["done"] = process_events([])
            except Exception as exc:  # reported below, in the test's thread
                outcome["error"] = exc

    worker = threading.Thread(target=job)
    worker.start()
    with app.app_context():
        watcher = get_session()
        while worker.is_alive():
            worker.join(0.05)
            if worker.is_alive() and lock_waiters(watcher):
                other.rollback()
                worker.join()
                pytest.fail("the job's rollup waited for the other rollup's lock")
        watcher.rollback()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["done"] == 3
    assert _entered(app) == 2, "the held source was left to its holder"
    with app.app_context():
        session = get_session()
        events_mark = session.scalar(select(StatWatermark.last_id).where(StatWatermark.source == "events"))
        assert events_mark == session.scalar(select(func.max(Event.id))), "the other sources were folded"
    other.rollback()  # the other rollup ends without counting (as if it found nothing new)
    other.close()
    with app.app_context():
        assert process_events([]) == 0  # the next job folds what is left
    assert _entered(app) == 5
    with app.app_context():
        rollup(get_session(), limit=None)
    assert _entered(app) == 5, "each entry counted once"
