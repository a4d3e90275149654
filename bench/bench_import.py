"""How fast `nudge contacts import` is: 100,000 rows into SQLite, next to csv.reader over the same file.

    .venv/bin/python bench/bench_import.py [ROWS]

Prints rows per second (wall clock, and CPU time of this process, which other load on the machine does not
change: SQLite runs in this process) for the import (validation with email-validator and phonenumbers, dedupe,
merge, tags, custom fields, the suppression list checked as the email channel's, chunked commits) and for a bare
``csv.reader`` pass, and their ratio; then for the same file imported again, when every row updates a stored
contact (a nightly sync). Each twice: in one process (``NUDGE_IMPORT_PROCESSES=1``), then with the rows checked
in a second process while this one writes (``2``, the default where two cores are free; the checking process's
CPU time a row is printed beside the writing one's). Last, the same rows in random order into a new database with
two processes: a real file is not sorted, and keys all over the indexes cost the writer more.
Issue #12 target: >= 50,000 rows/s.
"""

from __future__ import annotations

import csv
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import size_argument  # noqa: E402
from bench.table import Row, render  # noqa: E402

TARGET = 50_000


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


def shuffled(path: Path, out: Path) -> None:
    """*path*'s rows in random order (the header first) written to *out*."""
    header, *lines = path.read_text().splitlines(keepends=True)
    random.Random(11).shuffle(lines)
    out.write_text(header + "".join(lines))


def measure(rows: int) -> list[Row]:
    """Import *rows* rows in one process, then in two (the rows checked in a second process while the first
    writes); rows per second next to a bare csv.reader pass over the same file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "contacts.csv"
        write_file(path, rows)
        start = time.perf_counter()
        with path.open(newline="") as fh:
            baseline_rows = sum(1 for _ in csv.reader(fh)) - 1
        rows_per_s = baseline_rows / (time.perf_counter() - start)
        out: list[Row] = []
        for processes, how in ((1, "one process"), (2, "checked in a second process")):
            elapsed, cpu, checker = _imports(Path(tmp) / f"p{processes}", path, rows, processes)
            for clock, times in (("", elapsed), (", CPU time of the writing process", cpu)):
                for what, took, checking in zip(
                    ("new contacts", "the same file again (all updates)"), times, checker, strict=True
                ):
                    note = ""
                    if clock and processes > 1:
                        note = f"; the checking process {checking / rows * 1e6:.1f} µs a row"
                    out.append(_row(f"{how}: {what} ({rows:,} rows{clock}{note})", rows / took, rows_per_s))
        mixed = Path(tmp) / "random.csv"
        shuffled(path, mixed)
        elapsed, cpu, checker = _imports(Path(tmp) / "random", mixed, rows, 2, times=1)
        for clock, took in (
            ("", elapsed[0]),
            (f", CPU time of the writing process; the checking process {checker[0] / rows * 1e6:.1f} µs a row", cpu[0]),
        ):
            what = f"new contacts, the rows in random order ({rows:,} rows{clock})"
            out.append(_row(f"checked in a second process: {what}", rows / took, rows_per_s))
    return out


def _row(what: str, rate: float, baseline: float) -> Row:
    """The table's row of an import of *rate* rows a second, next to csv.reader's *baseline*."""
    return Row(
        f"contacts import, {what}",
        rate,
        "rows/s",
        baseline,
        "csv.reader over the same file",
        f">= {TARGET:,} rows/s",
        rate >= TARGET,
    )


def _imports(
    home: Path, path: Path, rows: int, processes: int, times: int = 2
) -> tuple[list[float], list[float], list[float]]:
    """Import the file *times* times into a new database (twice: the second updates every contact): seconds by the
    clock, in CPU time of this process, and in CPU time of the checking process, of each import."""
    from server.app import create_app
    from server.contacts import define_field
    from server.contacts.importer import import_csv
    from server.db import get_session
    from server.embedded_redis import EmbeddedRedis

    home.mkdir()
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
    elapsed, cpu, checker = [], [], []
    try:
        with app.app_context():
            session = get_session()
            define_field(session, "plan", "string")
            session.commit()
            for _ in range(times):
                start, start_cpu = time.perf_counter(), time.process_time()
                children = resource.getrusage(resource.RUSAGE_CHILDREN)
                with path.open(newline="") as fh:
                    report = import_csv(
                        session,
                        fh,
                        secret=app.config["SECRET_KEY"],
                        mapping={"Plan": "plan"},
                        channels={"email": ("email",)},  # as `nudge contacts import` with the email channel
                        processes=processes,
                    )
                elapsed.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                checker.append(after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime)
                print(f"{processes} process(es): {report.summary()}")
    finally:
        app.extensions["nudge.db"].dispose()
        redis.stop()
    if times == 1 and (report.created != rows - rows // 50 or report.errors):
        raise SystemExit(
            f"the import did not write every person of the file ({report.summary()}): the bench is invalid"
        )
    if times == 2 and (report.created or report.updated != rows - rows // 50):
        raise SystemExit(f"the second import did not update every contact ({report.summary()}): the bench is invalid")
    return elapsed, cpu, checker


def rows(full: bool) -> list[Row]:
    return measure(100_000 if full else 20_000)


def main() -> None:
    print(render(measure(size_argument(__doc__, 100_000))))


if __name__ == "__main__":
    main()
