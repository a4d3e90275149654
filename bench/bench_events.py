"""Events processed by workers: events per second per worker, set-wise against the interpreter, and two workers
against one on PostgreSQL.

Issue #12 point 2 targets: >= 20,000 events/s per worker for simple rules (match, enrol, tag/score/send/wait);
two workers on PostgreSQL >= 1.7x one. The events are stored first and handed to the workers in jobs of
``JOB`` event ids (as a busy ingest or the scheduler's recovery hands them on); the time is that of the jobs,
from the first one's start to the last one's end (RQ's own timestamps), so worker start-up does not count.
Run: .venv/bin/python bench/bench_events.py [--events 50000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select

from bench.common import bench_app
from bench.table import Row, failed, ratio_at_least, render
from server.db import get_session
from server.engine.jobs import process_events
from server.models import Contact, Enrolment, Event
from tests.helpers import load_rules

ROOT = Path(__file__).resolve().parent.parent
RULE = """rule "Welcome"
when form.submitted then
  tag "lead"
  score +1
  send email welcome
  wait 1d
end
"""
#: event ids per job
JOB = 1000
#: events per contact (the second finds the contact still in its journey: the entry policy keeps it out)
PER_CONTACT = 2
TARGET = 20_000


def _fill(app, events: int) -> list[int]:
    """Store *events* ``form.submitted`` events for ``events / PER_CONTACT`` contacts; return their ids."""
    load_rules(app, RULE)
    with app.app_context():
        session = get_session()
        contacts = max(1, events // PER_CONTACT)
        for start in range(0, contacts, 10_000):
            size = min(10_000, contacts - start)
            batch = [{"email": f"c{start + i}@example.com", "fields": {}} for i in range(size)]
            session.execute(insert(Contact), batch)
        ids = list(session.scalars(select(Contact.id).order_by(Contact.id)))
        for start in range(0, events, 10_000):
            session.execute(
                insert(Event),
                [
                    {"contact_id": ids[(start + i) % len(ids)], "name": "form.submitted", "props": {}}
                    for i in range(min(10_000, events - start))
                ],
            )
        session.commit()
        return list(session.scalars(select(Event.id).where(Event.name == "form.submitted").order_by(Event.id)))


def _enqueue(app, event_ids: list[int]) -> None:
    queue = app.extensions["nudge.queue"]
    for start in range(0, len(event_ids), JOB):
        queue.enqueue(process_events, event_ids[start : start + JOB])


def _job_span(app) -> float:
    """Seconds from the first finished job's start to the last one's end."""
    from rq.job import Job
    from rq.registry import FinishedJobRegistry

    tq = app.extensions["nudge.queue"]
    jobs = [
        job
        for queue in tq.queues
        for job in Job.fetch_many(FinishedJobRegistry(queue=queue).get_job_ids(), connection=tq.redis)
        if job is not None and job.func_name.endswith("process_events")
    ]
    if not jobs:
        raise RuntimeError("no process_events job finished")
    return (max(j.ended_at for j in jobs) - min(j.started_at for j in jobs)).total_seconds()


def _check(app, events: int) -> None:
    with app.app_context():
        session = get_session()
        left = session.scalar(select(func.count(Event.id)).where(Event.processed_at.is_(None)))
        enrolled = session.scalar(select(func.count(Enrolment.id)))
    if left or enrolled != max(1, events // PER_CONTACT):
        raise RuntimeError(f"{left} events unprocessed, {enrolled} enrolments: the benchmark is invalid")


def _work(app) -> None:
    """One burst worker on the engine's queue (the outbox rows the events wrote wait on the send queue)."""
    from server.queue import AppWorker

    tq = app.extensions["nudge.queue"]
    AppWorker([tq.queue], connection=tq.redis, app=app).work(burst=True, logging_level="WARNING")


def one_worker(events: int, set_wise: bool = True) -> float:
    """Events per second through one in-process RQ worker on SQLite."""
    with bench_app(ENGINE_SET_WISE_EVENTS=set_wise) as app:
        _enqueue(app, _fill(app, events))
        _work(app)
        _check(app, events)
        return events / _job_span(app)


def workers_on_postgres(events: int, workers: int) -> float:
    """Events per second through *workers* burst worker processes on PostgreSQL."""
    from tests.servers import PostgresServer

    server = PostgresServer().start()
    try:
        url = server.new_database("bench")
        with bench_app(DATABASE_URL=url) as app:
            _enqueue(app, _fill(app, events))
            settings = {key: app.config[key] for key in ("HOME", "REDIS_URL", "SECRET_KEY", "SMTP_URL")}
            settings.update(DATABASE_URL=url, LOAD_ENTRY_POINTS=False, LOG_LEVEL="WARNING")
            command = [sys.executable, __file__, "--worker", json.dumps(settings)]
            procs = [subprocess.Popen(command, cwd=ROOT) for _ in range(workers)]
            for proc in procs:
                if proc.wait(timeout=3600):
                    raise RuntimeError(f"a worker exited with {proc.returncode}")
            _check(app, events)
            return events / _job_span(app)
    finally:
        server.stop()


def measure(events: int) -> list[Row]:
    """Set-wise against the interpreter on one worker; two workers against one on PostgreSQL."""
    rows = []
    try:
        fast = one_worker(events)
        slow = one_worker(min(events, 2_000), set_wise=False)
        path = f"events processed, one worker, SQLite ({events:,} events, tag/score/send/wait)"
        rows.append(
            Row(path, fast, "events/s", slow, "the interpreter, same run", f">= {TARGET:,} events/s", fast >= TARGET)
        )
    except Exception as exc:  # one failing part still lets the other report
        rows.append(failed("events processed, one worker, SQLite", f"{type(exc).__name__}: {exc}"))
    try:
        one = workers_on_postgres(events, 1)
        two = workers_on_postgres(events, 2)
        path = f"events processed, two workers, PostgreSQL ({events:,} events)"
        rows.append(ratio_at_least(path, two, "events/s", one, "one worker", 1.7))
    except Exception as exc:
        rows.append(failed("events processed, two workers, PostgreSQL", f"{type(exc).__name__}: {exc}"))
    return rows


def rows(full: bool) -> list[Row]:
    return measure(50_000 if full else 10_000)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--worker", help="run one burst worker with these settings (JSON): the bench's own use")
    args = parser.parse_args()
    if args.worker:
        from server.app import create_app

        _work(create_app(json.loads(args.worker)))
        return
    start = time.perf_counter()
    print(render(measure(args.events)))
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
