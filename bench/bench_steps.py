"""Journey steps per second through one RQ worker, against bare RQ no-op jobs per second.

Issue #4 target: steps per second per worker >= 20x bare RQ SimpleWorker no-op jobs per second.
Run: .venv/bin/python bench/bench_steps.py [--contacts 20000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select

from bench.common import bench_app, rq_noop_rate
from bench.table import Row, ratio_at_least, render
from server.db import get_session
from server.models import Contact, Enrolment, Rule
from tests.helpers import load_rules

RULE = """rule "Drip"
when bench.started then
  wait 1d
  tag "engaged"
  score +1
  wait 1d
  send email later
end
"""
STEPS_PER_RESUME = 3  # tag, score, wait


def measure(contacts: int) -> list[Row]:
    """Journey steps per second for *contacts* due enrolments through one worker, next to bare RQ no-op jobs."""
    with bench_app() as app:
        load_rules(app, RULE)
        with app.app_context():
            session = get_session()
            rule = session.scalar(select(Rule))
            now = int(time.time())
            session.execute(insert(Contact), [{"email": f"c{i}@example.com", "fields": {}} for i in range(contacts)])
            ids = list(session.scalars(select(Contact.id)))
            session.execute(
                insert(Enrolment),
                [
                    {
                        "contact_id": cid,
                        "rule_id": rule.id,
                        "version_id": rule.active_version_id,
                        "pc": 1,
                        "state": 0,
                        "due": now - 10,
                        "entered": now - 86400,
                    }
                    for cid in ids
                ],
            )
            session.commit()
            from server.engine.jobs import requeue_due

            requeue_due(max_batches=10_000)  # lease everything into batch jobs, as the scheduler does
        from server.queue import AppWorker

        tq = app.extensions["nudge.queue"]
        start = time.perf_counter()
        AppWorker([tq.queue], connection=tq.redis, app=app).work(burst=True, logging_level="WARNING")
        elapsed = time.perf_counter() - start
        with app.app_context():
            waiting = get_session().scalar(select(func.count(Enrolment.id)).where(Enrolment.pc == 4))
        if waiting != contacts:
            raise SystemExit(f"only {waiting} of {contacts} enrolments advanced: the benchmark is invalid")
        steps = contacts * STEPS_PER_RESUME / elapsed
        baseline = rq_noop_rate(app)
    return [
        ratio_at_least(
            f"journey steps per second, one worker ({contacts:,} enrolments)",
            steps,
            "steps/s",
            baseline,
            "bare RQ SimpleWorker no-op jobs/s",
            20,
        )
    ]


def rows(full: bool) -> list[Row]:
    return measure(20_000 if full else 5_000)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=20_000)
    print(render(measure(parser.parse_args().contacts)))


if __name__ == "__main__":
    main()
