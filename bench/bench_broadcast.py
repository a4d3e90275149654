"""How fast a broadcast turns a segment into outbox rows, next to a bare ``INSERT … SELECT`` of the same members.

    .venv/bin/python bench/bench_broadcast.py [MEMBERS]

Fills SQLite with twice *MEMBERS* contacts (``newsletter`` on every second one), saves the segment
``tag == "newsletter"`` and times ``create_broadcast`` plus its commit (the rows the send queue gets), then the
same broadcast run again (it must write nothing); the first run also in CPU time of this process (SQLite runs in
it), which other load on the machine does not change. The condition parser is built before the clock starts (a
one-off second per process). The baseline copies the same members' ids, with constant
columns, into an unindexed scratch table in the same database: the machine's own ``INSERT … SELECT`` rate.
Issue #12 target: a 1,000,000-contact segment at >= 50,000 rows/s.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select, text

from bench.common import bench_app, size_argument
from bench.crm_data import fill_contacts
from bench.table import Row, render

TARGET = 50_000


def _baseline(session) -> float:
    """Rows per second of a bare ``INSERT … SELECT`` of the segment's members into a scratch table."""
    session.execute(text("CREATE TABLE bench_copy (key TEXT, contact_id INTEGER, channel TEXT, status TEXT)"))
    start = time.perf_counter()
    copied = session.execute(
        text(
            "INSERT INTO bench_copy SELECT 'copy:' || c.id, c.id, 'email', 'pending' FROM contacts c "
            "JOIN contact_tags t ON t.contact_id = c.id AND t.tag = 'newsletter' ORDER BY c.id"
        )
    ).rowcount
    session.commit()
    rate = copied / (time.perf_counter() - start)
    session.execute(text("DROP TABLE bench_copy"))
    session.commit()
    return rate


def measure(members: int) -> list[Row]:
    """Broadcast to a segment of *members* contacts; rows per second, first run and re-run."""
    from server.db import get_session
    from server.engine.broadcast import create_broadcast
    from server.models import Message, Segment
    from server.segments import compile_condition

    with tempfile.TemporaryDirectory() as tmp, bench_app(DATABASE_URL=f"sqlite:///{Path(tmp) / 'bench.db'}") as app:
        fill_contacts(app, members * 2)
        plugins = app.extensions["nudge.plugins"]
        with app.app_context():
            session = get_session()
            session.add(Segment(name="news", condition='tag == "newsletter"'))
            session.commit()
            baseline = _baseline(session)
            compile_condition(session, 'tag == "x"')  # builds the parser once, as any earlier use in the process would
            start, start_cpu = time.perf_counter(), time.process_time()
            first = create_broadcast(session, plugins, "email", "welcome", "news", "bench")
            session.commit()
            elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
            start = time.perf_counter()
            again = create_broadcast(session, plugins, "email", "welcome", "news", "bench")
            session.commit()
            rerun = time.perf_counter() - start
            written = session.scalar(select(func.count(Message.id)))
    if first.members != members or written != members or again.members != members:
        raise SystemExit(f"wrote {written} rows for {members} members: the benchmark is invalid")
    rate = members / elapsed
    return [
        Row(
            f"broadcast: segment to outbox rows ({members:,} members)",
            rate,
            "rows/s",
            baseline,
            "bare INSERT … SELECT of the members",
            f">= {TARGET:,} rows/s",
            rate >= TARGET,
        ),
        Row(
            f"broadcast: segment to outbox rows ({members:,} members, CPU time)",
            members / cpu,
            "rows/s",
            baseline,
            "bare INSERT … SELECT of the members",
            f">= {TARGET:,} rows/s",
            members / cpu >= TARGET,
        ),
        Row(
            f"broadcast run again, nothing to write ({members:,} members)",
            members / rerun,
            "members/s",
            baseline,
            "bare INSERT … SELECT of the members",
            f">= {TARGET:,} members/s",
            members / rerun >= TARGET,
        ),
    ]


def rows(full: bool) -> list[Row]:
    return measure(1_000_000 if full else 100_000)


def main() -> None:
    print(render(measure(size_argument(__doc__, 1_000_000))))


if __name__ == "__main__":
    main()
