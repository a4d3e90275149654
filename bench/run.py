"""Run every benchmark in ``bench/`` and print one table of figure, baseline (same run), ratio, target and verdict.

    .venv/bin/python -m bench.run [--full] [NAME ...]      (or: make bench [BENCH_FULL=1] [BENCH="NAME ..."])

Each ``bench/bench_*.py`` module registers by defining ``rows(full: bool) -> list[Row]`` (:mod:`bench.table`):
quick sizes by default, the issues' sizes with ``--full`` (or ``BENCH_FULL=1``). Each runs in its own process, so
one failing or using much memory does not disturb the others; a failed bench shows as an ERROR row. The table is
built from the rows' data, and written as JSON to ``bench/results/`` (git-ignored): ``last.json`` and one file per run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.table import Row, failed, render

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"


class NotABench(Exception):
    """A ``bench_*.py`` module that does not register with the runner."""


def discover() -> list[str]:
    """The names of every benchmark module in ``bench/``, sorted."""
    return sorted(path.stem for path in HERE.glob("bench_*.py"))


def load(name: str) -> ModuleType:
    """The benchmark module *name*, checked to register: a ``rows(full)`` function.

    :raises NotABench: naming the module and what it lacks.
    """
    if name not in discover():
        raise NotABench(f"there is no bench/{name}.py; the benchmarks are: {', '.join(discover())}")
    module = importlib.import_module(f"bench.{name}")
    if not callable(getattr(module, "rows", None)):
        raise NotABench(f"bench/{name}.py has no rows(full) function: define one returning a list of bench.table.Row")
    return module


def child(name: str, full: bool, out: str) -> None:
    """In the child process: run one bench and write its rows as JSON to *out*."""
    rows = load(name).rows(full)
    if not rows or not all(isinstance(row, Row) for row in rows):
        raise NotABench(f"bench/{name}.py rows() returned {rows!r:.200}: it must return a non-empty list of Row")
    Path(out).write_text(json.dumps([row.as_dict() for row in rows]))


def run_one(name: str, full: bool) -> list[Row]:
    """Run bench *name* in a child process (its progress lines pass through); its rows, or one ERROR row."""
    with tempfile.TemporaryDirectory(prefix="nudge-bench-rows-") as tmp:
        out = os.path.join(tmp, "rows.json")
        command = [sys.executable, "-m", "bench.run", "--child", name, "--out", out] + (["--full"] if full else [])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        code = subprocess.call(command, cwd=ROOT, env=env)
        if code != 0 or not os.path.exists(out):
            return [failed(name, f"the bench exited with status {code}; its output is above")]
        return [Row.from_dict(data) for data in json.loads(Path(out).read_text())]


#: how long :func:`fsync_rate` writes and syncs
FSYNC_SECONDS = 1.0


def fsync_rate(directory: str, seconds: float | None = None) -> float:
    """fsyncs per second on *directory*'s filesystem: a 4 KiB write then ``os.fsync`` in a loop, for *seconds*.

    Every commit of a database on that disk costs at least one, so this bounds what the benches can write.
    """
    seconds = FSYNC_SECONDS if seconds is None else seconds
    block = os.urandom(4096)
    fd, path = tempfile.mkstemp(prefix="nudge-bench-fsync-", dir=directory)
    try:
        count, start = 0, time.perf_counter()
        while True:
            os.write(fd, block)
            os.fsync(fd)
            count += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                return count / elapsed
    finally:
        os.close(fd)
        os.unlink(path)


def machine() -> dict[str, object]:
    """What the figures were measured on; the fsync rate on the filesystem the benches keep their data on (the
    temp directory: each bench makes its instance folder there)."""
    load1, load5, _ = os.getloadavg()
    return {
        "cores": os.cpu_count(),
        "load": [round(load1, 2), round(load5, 2)],
        "fsync": round(fsync_rate(tempfile.gettempdir())),
        "fsync_dir": tempfile.gettempdir(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
    }


def header(about: dict[str, Any], full: bool, path: Path) -> str:
    """The line above the table: the machine (cores, load, fsync rate), the sizes, where the JSON is."""
    return (
        f"Machine: {about['cores']} cores, load {about['load'][0]} {about['load'][1]} (1 and 5 min), "
        f"{about['fsync']:,} fsyncs/s ({about['fsync_dir']}), Python {about['python']}, SQLite {about['sqlite']}; "
        f"{'full' if full else 'quick'} sizes; JSON in {path}"
    )


def save(rows: list[Row], full: bool, about: dict[str, object]) -> Path:
    """Write the run as JSON to ``bench/results/`` (``last.json`` and a file named by the time); return the latter."""
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    body = json.dumps(
        {"when": stamp, "full": full, "machine": about, "rows": [row.as_dict() for row in rows]}, indent=1
    )
    path = RESULTS / f"{stamp}.json"
    path.write_text(body)
    (RESULTS / "last.json").write_text(body)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all), e.g. bench_dsl")
    parser.add_argument(
        "--full",
        action="store_true",
        default=os.environ.get("BENCH_FULL", "") not in ("", "0"),
        help="the issues' sizes (slow); also BENCH_FULL=1",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.full, args.out)
        return 0
    names = args.names or discover()
    try:
        for name in names:
            load(name)
    except NotABench as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    rows: list[Row] = []
    for name in names:
        print(f"== {name} ({'full' if args.full else 'quick'} sizes)", flush=True)
        rows += run_one(name, args.full)
    about = machine()
    path = save(rows, args.full, about)
    print()
    print(render(rows, header(about, args.full, path)))
    return 0 if all(row.verdict != "ERROR" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
