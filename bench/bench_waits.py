"""1,000,000 waiting enrolments on SQLite: bytes per wait, time to create them, time to fire them all.

Issue #4 targets: <= 150 bytes per wait on disk, created in <= 10 s, all due ones fired into their next
step in <= 60 s (also given in CPU time of this process, where the worker and SQLite run: the load of a shared
machine does not inflate it). Baselines measured in the same run on the same disk: a bare ``INSERT … SELECT`` of the
same number of rows into a table of the same columns (creation), and bare RQ no-op jobs for the same
number of batches (firing), so the ratios show the engine's own overhead.
Run: .venv/bin/python bench/bench_waits.py [--contacts 1000000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select, update

from bench.common import bench_app, rq_noop_rate
from bench.table import Row, render, under
from server.db import get_db, get_session
from server.models import Contact, Enrolment, Message, Rule, ScheduleTimer
from tests.helpers import load_rules

RULE = """rule "Check-in"
when every day at 09:00 then
  wait 3d
  send email check_in
  wait 7d
end
"""


def db_bytes(app) -> int:
    raw = get_db(app).engine.raw_connection()  # outside any transaction: a checkpoint needs that
    try:
        raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        raw.close()
    path = app.config["DATABASE_URL"].removeprefix("sqlite:///")
    return os.path.getsize(path) + (os.path.getsize(path + "-wal") if os.path.exists(path + "-wal") else 0)


def measure(n: int) -> list[Row]:
    """Bytes per wait, creation and firing times for *n* waiting enrolments, next to bare inserts and RQ jobs."""
    with bench_app() as app:
        load_rules(app, RULE)
        with app.app_context():
            session = get_session()
            print(f"creating {n:,} contacts (set-up, not timed) …", flush=True)
            for start in range(0, n, 100_000):
                session.execute(
                    insert(Contact),
                    [{"email": f"c{i}@example.com", "fields": {}} for i in range(start, min(n, start + 100_000))],
                )
            session.commit()
            rule = session.scalar(select(Rule))
            now = int(time.time())
            session.add(ScheduleTimer(rule_id=rule.id, timezone="UTC", due=now - 1))
            session.commit()
        before = db_bytes(app)

        # -- create: the schedule fires and enrols everyone into `wait 3d` ---------------------
        from server.engine.jobs import fire_timers

        with app.app_context():
            t0 = time.perf_counter()
            fire_timers()
            create_s = time.perf_counter() - t0
            waiting = get_session().scalar(select(func.count(Enrolment.id)).where(Enrolment.pc == 1))
        assert waiting == n, f"{waiting} enrolments instead of {n}"
        per_wait = (db_bytes(app) - before) / n
        raw = get_db(app).engine.raw_connection()
        try:
            sizes = (
                raw.cursor().execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall()
            )
        finally:
            raw.close()
        print(
            "on disk, by table and index:",
            ", ".join(f"{name} {size / n:.0f} B/wait" for name, size in sizes if "enrol" in name or "journey" in name),
        )

        # baseline: the same number of rows through a bare INSERT … SELECT
        with get_db(app).engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE bare (a INT, b INT, c INT, d INT, e INT, f INT, g INT)")
            t0 = time.perf_counter()
            conn.exec_driver_sql("INSERT INTO bare SELECT id, 1, 1, 1, 0, 0, 0 FROM contacts")
            bare_s = time.perf_counter() - t0

        # -- fire: three days pass; the scheduler leases batches, one worker advances them ---------------
        with app.app_context():
            session = get_session()
            session.execute(update(Enrolment).values(due=Enrolment.due - 3 * 86400 - 10))
            session.commit()
        from server.engine.jobs import BATCH, requeue_due
        from server.queue import AppWorker

        tq = app.extensions["nudge.queue"]
        worker = AppWorker([tq.queue], connection=tq.redis, app=app)
        t0, cpu0 = time.perf_counter(), time.process_time()
        batches = 0
        while True:
            with app.app_context():
                counts = requeue_due(max_batches=200)
            if not counts["enrolments"]:
                break
            batches += -(-counts["enrolments"] // BATCH)
            worker.work(burst=True, logging_level="WARNING")
        fire_s, fire_cpu = time.perf_counter() - t0, time.process_time() - cpu0
        with app.app_context():
            session = get_session()
            advanced = session.scalar(select(func.count(Enrolment.id)).where(Enrolment.pc == 3))
            outbox = session.scalar(select(func.count(Message.id)))
        assert advanced == n and outbox == n, f"advanced {advanced}, outbox rows {outbox}, expected {n}"
        rq_rate = rq_noop_rate(app, 2000)

    scale = n / 1_000_000  # the targets are for 1,000,000 waits; smaller runs get their share
    size = f"{n:,} waits"
    return [
        Row(f"waits: bytes per wait on disk ({size})", per_wait, "bytes", 0.0, "", "<= 150 bytes", per_wait <= 150),
        under(
            f"waits: created by one schedule ({size})",
            create_s,
            "s",
            bare_s,
            "bare INSERT ... SELECT of as many rows",
            10 * scale,
        ),
        under(
            f"waits: all fired into the next step ({size})",
            fire_s,
            "s",
            batches / rq_rate,
            f"{batches} bare RQ no-op jobs",
            60 * scale,
        ),
        under(  # the worker runs in this process (SQLite too): CPU time, which other load does not inflate
            f"waits: all fired into the next step ({size}, CPU time)",
            fire_cpu,
            "s",
            batches / rq_rate,
            f"{batches} bare RQ no-op jobs (by the clock)",
            60 * scale,
        ),
    ]


def rows(full: bool) -> list[Row]:
    return measure(1_000_000 if full else 100_000)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=1_000_000)
    print(render(measure(parser.parse_args().contacts)))


if __name__ == "__main__":
    main()
