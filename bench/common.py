"""Shared set-up for the benchmarks: a real app on a temp SQLite file, a real embedded Redis."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from server.app import create_app
from server.embedded_redis import EmbeddedRedis


def size_argument(doc: str | None, default: int) -> int:
    """The size a benchmark run by hand measures (``python -m bench.bench_X [SIZE]``; ``--help`` shows its
    docstring *doc*), *default* without one."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("size", nargs="?", type=int, default=default, help=f"how many (default {default:,})")
    size: int = parser.parse_args().size
    if size < 1:
        parser.error("the size must be at least 1")
    return size


@contextmanager
def bench_app(**config) -> Iterator:
    home = tempfile.mkdtemp(prefix="nudge-bench-")
    redis = EmbeddedRedis(os.path.join(home, "redis"))
    redis.start()
    settings = {
        "HOME": home,
        "REDIS_URL": redis.url,
        "SECRET_KEY": "bench-secret-key-0123456789",
        "LOAD_ENTRY_POINTS": False,
        "LOG_LEVEL": "WARNING",
        "SMTP_URL": "smtp://127.0.0.1:9",
    }
    settings.update(config)
    app = create_app(settings)
    try:
        yield app
    finally:
        app.extensions["nudge.queue"].close()
        app.extensions["nudge.db"].dispose()
        redis.stop()
        shutil.rmtree(home, ignore_errors=True)  # a bench leaves nothing in /tmp


def noop() -> None:
    """The baseline job: does nothing."""


def rq_noop_rate(app, jobs: int = 2000) -> float:
    """Bare RQ: no-op jobs per second through one SimpleWorker on the same Redis."""
    from rq import Queue, SimpleWorker

    tq = app.extensions["nudge.queue"]
    queue = Queue("bench-baseline", connection=tq.redis)
    for _ in range(jobs):
        queue.enqueue(noop)
    start = time.perf_counter()
    SimpleWorker([queue], connection=tq.redis).work(burst=True, logging_level="WARNING")
    return jobs / (time.perf_counter() - start)


def report(name: str, value: float, unit: str, baseline: float, baseline_name: str, target: float) -> None:
    ratio = value / baseline if baseline else float("inf")
    verdict = "meets" if ratio >= target else "BELOW"
    print(f"{name}: {value:,.0f} {unit}")
    print(f"baseline ({baseline_name}): {baseline:,.0f} {unit}")
    print(f"ratio: {ratio:.1f}x (target >= {target}x: {verdict})")
