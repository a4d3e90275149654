"""How fast `nudge contacts import` is: 100,000 rows into SQLite, next to csv.reader over the same file.

    .venv/bin/python bench/bench_import.py [ROWS]

Prints rows per second for the import (validation with email-validator and phonenumbers, dedupe,
merge, tags, custom fields, chunked commits) and for a bare ``csv.reader`` pass, and their ratio.
The target is 100,000 rows in under a minute.
"""

from __future__ import annotations

import csv
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.table import Row, render  # noqa: E402


def write_file(path: Path, rows: int) -> None:
    rng = random.Random(7)
    plans = ["free", "pro", "team"]
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["Email", "First Name", "Last Name", "Phone", "Plan", "Tags"])
        for i in range(rows):
            # every 50th row repeats an earlier person: dedupe and merge get exercised
            n = i - 1 if i % 50 == 49 else i
            phone = f"+49 30 {1000000 + n}" if n % 3 == 0 else ""
            out.writerow(
                [
                    f"User{n}@Example.com",
                    f"First{n}",
                    f"Last{n}",
                    phone,
                    rng.choice(plans),
                    "bench;" + rng.choice(plans),
                ]
            )


def measure(rows: int) -> list[Row]:
    """Import *rows* rows; rows per second next to a bare csv.reader pass over the same file."""
    from server.app import create_app
    from server.contacts import define_field
    from server.contacts.importer import import_csv
    from server.db import get_session
    from server.embedded_redis import EmbeddedRedis

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        path = home / "contacts.csv"
        write_file(path, rows)
        start = time.perf_counter()
        with path.open(newline="") as fh:
            baseline_rows = sum(1 for _ in csv.reader(fh)) - 1
        baseline = time.perf_counter() - start

        redis = EmbeddedRedis(home / "redis")
        redis.start()
        app = create_app(
            {
                "HOME": str(home),
                "DATABASE_URL": f"sqlite:///{home / 'bench.db'}",
                "REDIS_URL": redis.url,
                "SECRET_KEY": "bench-secret-key-0123456789",
                "LOAD_ENTRY_POINTS": False,
            }
        )
        try:
            with app.app_context():
                session = get_session()
                define_field(session, "plan", "string")
                session.commit()
                start = time.perf_counter()
                with path.open(newline="") as fh:
                    report = import_csv(session, fh, secret=app.config["SECRET_KEY"], mapping={"Plan": "plan"})
                elapsed = time.perf_counter() - start
        finally:
            app.extensions["nudge.db"].dispose()
            redis.stop()
    print(report.summary())
    rate = rows / elapsed
    return [
        Row(
            f"contacts import: rows per second ({rows:,} rows)",
            rate,
            "rows/s",
            baseline_rows / baseline,
            "csv.reader over the same file",
            f"100,000 rows in < 60 s (>= {100_000 / 60:,.0f} rows/s)",
            rate >= 100_000 / 60,
        )
    ]


def rows(full: bool) -> list[Row]:
    return measure(100_000 if full else 20_000)


def main() -> None:
    print(render(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)))


if __name__ == "__main__":
    main()
