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
            out.writerow([f"User{n}@Example.com", f"First{n}", f"Last{n}", phone, rng.choice(plans),
                          "bench;" + rng.choice(plans)])


def main(rows: int = 100_000) -> None:
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
        app = create_app({"HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'bench.db'}",
                          "REDIS_URL": redis.url, "SECRET_KEY": "bench-secret-key-0123456789",
                          "LOAD_ENTRY_POINTS": False})
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
    print(f"csv.reader baseline : {baseline_rows / baseline:12,.0f} rows/s ({baseline:.2f}s)")
    print(f"nudge contacts import: {rows / elapsed:12,.0f} rows/s ({elapsed:.2f}s for {rows:,} rows)")
    print(f"ratio               : import is {baseline / elapsed * 100:.2f}% of csv.reader's speed "
          f"(1 : {elapsed / baseline:.0f}); target: {rows:,} rows in < 60s -> "
          f"{'met' if elapsed < 60 * rows / 100_000 else 'MISSED'}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
