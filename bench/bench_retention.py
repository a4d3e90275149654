"""A year of traffic for 100,000 contacts on SQLite: the file's size without retention, after the cleanup, after
VACUUM, and after more traffic on the cleaned file (freed pages are used again: the file stays bounded).

Issue #16 point 3. The rows are written set-wise (``INSERT … SELECT`` over a counter), evenly spread over 365 days
and in time order, as the engine and the API would have written them; per contact and year: 50 events (12 opens,
4 clicks among them), 6 finished journeys in 3 rules with 4 trace lines each, 12 sent messages with 2 status changes
each. The stats rollup is taken as caught up (its watermarks at the newest rows): this measures storage, not the
rollup, whose rate bench_stats reports. The cleanup keeps 90 days (``RETAIN_*_DAYS=90``), so a quarter of the year
stays; with the default 400 days a year's traffic stays whole and the file levels off after 400 days.
Run: .venv/bin/python bench/bench_retention.py [--contacts 100000]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text

from bench.bench_waits import db_bytes
from bench.common import bench_app
from bench.table import Row, failed, render
from server.db import get_db, get_session
from server.engine.retention import clean
from server.engine.timeutil import to_ts
from server.models import utcnow

YEAR = 365 * 86400
KEEP_DAYS = 90
#: per contact and year
EVENTS, OPENS, CLICKS, JOURNEYS, TRACE, MESSAGES = 50, 12, 4, 6, 4, 12

_SEQ = "WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < :total - 1) "
_AT = "(:start + i * :span / :total)"  # UNIX seconds, growing with i (and so with the ids)
_DT = f"datetime({_AT}, 'unixepoch') || '.000000'"


def generate(session, contacts: int, start: int, span: int) -> None:
    """*span* seconds of traffic for *contacts* contacts from *start*, written set-wise in time order."""
    days = span / YEAR

    def run(sql: str, per_year: int) -> None:
        total = max(1, int(contacts * per_year * days))
        session.execute(text(_SEQ + sql), {"total": total, "start": start, "span": span, "n": contacts})
        session.commit()

    run(
        "INSERT INTO events (contact_id, name, props, source, occurred_at, received_at, processed_at, attempts) "
        f"SELECT i % :n + 1, CASE i % 25 WHEN 0 THEN 'email.clicked' WHEN 1 THEN 'email.clicked' "
        "WHEN 2 THEN 'email.opened' WHEN 3 THEN 'email.opened' WHEN 4 THEN 'email.opened' "
        "WHEN 5 THEN 'email.opened' WHEN 6 THEN 'email.opened' WHEN 7 THEN 'email.opened' "
        "ELSE 'page.viewed' END, "
        '\'{"page": "/pricing", "ref": "newsletter", "message": "enr\' || char(58) || i || char(58) '
        "|| 's1\"}', 'api', "
        f"{_DT}, {_DT}, {_DT}, 0 FROM seq",
        EVENTS,
    )
    first = session.execute(text("SELECT coalesce(max(id), 0) FROM enrolments")).scalar_one()
    run(
        "INSERT INTO enrolments (contact_id, rule_id, version_id, pc, state, entered, finished, exit_reason) "
        f"SELECT i % :n + 1, i / :n % 3 + 1, i / :n % 3 + 1, 3, 1, {_AT}, {_AT} + 3600, 'completed' FROM seq",
        JOURNEYS,
    )
    run(
        "INSERT INTO journey_log (enrolment_id, contact_id, rule_id, at, action, data) "
        f"SELECT {first} + i / 4 + 1, i / 4 % :n + 1, 1, {_AT}, "
        "CASE i % 4 WHEN 0 THEN 'enter' WHEN 3 THEN 'exit' ELSE 'wait' END, '{\"pc\": 1}' FROM seq",
        JOURNEYS * TRACE,
    )
    run(
        "INSERT INTO messages (key, contact_id, channel, template, status, attempts, data, created_at, sent_at) "
        f"SELECT 'enr' || char(58) || ({first} + i / 2 + 1) || char(58) || 's' || (i % 2) || char(58) || :start, "
        "i % :n + 1, 'email', "
        f"'welcome', 'sent', 1, '{{}}', {_DT}, {_DT} FROM seq",
        MESSAGES,
    )
    session.execute(
        text(
            "INSERT INTO message_status_changes (message_id, status, source, at) "
            "SELECT id, 'sent', 'worker', created_at FROM messages WHERE created_at >= :since "
            "UNION ALL SELECT id, 'delivered', 'smtp', created_at FROM messages WHERE created_at >= :since ORDER BY 4"
        ),
        {"since": datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d %H:%M:%S")},
    )
    for source, table in (
        ("events", "events"),
        ("journey_log", "journey_log"),
        ("message_status", "message_status_changes"),
    ):
        session.execute(  # the rollup is taken as caught up (see the module's docstring)
            text(
                "INSERT INTO stat_watermarks (source, last_id) SELECT :source, coalesce(max(id), 0) FROM "
                f"{table} WHERE true ON CONFLICT (source) DO UPDATE SET last_id = excluded.last_id"
            ),
            {"source": source},
        )
    session.commit()


def _vacuum(app) -> None:
    raw = get_db(app).engine.raw_connection()
    try:
        raw.cursor().execute("VACUUM")
    finally:
        raw.close()


def measure(contacts: int) -> list[Row]:
    """The file's sizes for *contacts* contacts' year, without retention and with it."""
    settings = {
        f"RETAIN_{name}_DAYS": KEEP_DAYS for name in ("EVENTS", "TRACKING", "JOURNEY_LOG", "ENROLMENTS", "MESSAGES")
    }
    with bench_app(**settings) as app, app.app_context():
        session = get_session()
        session.execute(
            text(
                _SEQ + "INSERT INTO contacts (public_id, email, fields, score, created_at, updated_at) "
                "SELECT lower(hex(randomblob(16))), 'c' || i || '@example.com', '{}', 0, "
                "'2025-01-01 00:00:00.000000', '2025-01-01 00:00:00.000000' FROM seq"
            ),
            {"total": contacts},
        )
        session.commit()
        now = to_ts(utcnow())
        started = time.perf_counter()
        generate(session, contacts, now - YEAR, YEAR)
        made = time.perf_counter() - started
        mb = 1 / 1e6
        full = db_bytes(app) * mb
        started = time.perf_counter()
        counts = clean(session, app.config)
        took = time.perf_counter() - started
        cleaned = db_bytes(app) * mb
        # another 90 days of traffic on the cleaned file, cleaned again: freed pages take the new rows
        app.extensions["nudge.clock"] = lambda: datetime.fromtimestamp(now + KEEP_DAYS * 86400, UTC)
        generate(session, contacts, now, KEEP_DAYS * 86400)
        clean(session, app.config)
        later = db_bytes(app) * mb
        _vacuum(app)
        vacuumed = db_bytes(app) * mb
    print(f"generated in {made:.1f} s; cleanup deleted {sum(counts.values()):,} rows in {took:.1f} s: {counts}")
    size = f"{contacts:,} contacts, 1 year"
    base = "no retention"
    return [
        Row(f"{size}: SQLite file without retention", full, "MB", 0.0, "", "-", True),
        Row(
            f"{size}: after cleanup keeping {KEEP_DAYS} days",
            cleaned,
            "MB",
            full,
            base,
            "= baseline (pages freed)",
            cleaned <= full * 1.01,
        ),
        Row(
            f"{size} + {KEEP_DAYS} more days, cleaned again",
            later,
            "MB",
            full,
            base,
            "<= 1.05x baseline",
            later <= full * 1.05,
        ),
        Row(
            f"{size}: after VACUUM",
            vacuumed,
            "MB",
            full,
            base,
            f"<= {KEEP_DAYS / 365 + 0.1:.2f}x baseline",
            vacuumed <= full * (KEEP_DAYS / 365 + 0.1),
        ),
    ]


def rows(full: bool) -> list[Row]:
    try:
        return measure(100_000 if full else 10_000)
    except Exception as exc:  # the runner shows it as an ERROR row
        return [failed("retention", f"{type(exc).__name__}: {exc}")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=100_000)
    print(render(measure(parser.parse_args().contacts)))


if __name__ == "__main__":
    main()
