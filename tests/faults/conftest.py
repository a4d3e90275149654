"""Fixtures for the fault tests: a Redis of the test's own (these tests flush it) and real Nudge processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import pytest

from server.embedded_redis import EmbeddedRedis

from .smtp import holding_smtp  # noqa: F401  (a fixture, for every test of this folder)


@pytest.fixture
def redis_server(tmp_path_factory):
    """Overrides the session-wide Redis: a fault test may FLUSHALL it without touching anyone else's queue."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


class Processes:
    """``python -m server.cli …`` children sharing one configuration; each writes its log to a file."""

    def __init__(self, config: Mapping[str, Any], logs: Path, **settings: Any):
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_")}
        self.env.update({f"NUDGE_{key}": str(value) for key, value in config.items()})
        self.env.update({f"NUDGE_{key}": str(value) for key, value in settings.items()})
        self.env.update({"NUDGE_MIGRATE_ON_START": "false", "PYTHONUNBUFFERED": "1"})
        self.logs = logs
        self.logs.mkdir(parents=True, exist_ok=True)
        self.started: list[tuple[subprocess.Popen[bytes], IO[bytes], float]] = []
        self.kills = 0

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{len(self.started):03d}-{'-'.join(args)}.log", "wb")  # noqa: SIM115 (closed by stop)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "server.cli", *args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except BaseException:
            log.close()
            raise
        self.started.append((proc, log, time.monotonic()))
        return proc

    def age(self, proc: subprocess.Popen[bytes]) -> float:
        return next(time.monotonic() - at for p, _log, at in self.started if p is proc)

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """``kill -9``: no clean-up of any kind runs in the child."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            self.kills += 1
        proc.wait()

    def stop(self) -> None:
        """SIGTERM the survivors (a worker finishes its job, the scheduler its tick), SIGKILL the slow ones."""
        for proc, _log, _at in self.started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc, log, _at in self.started:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            finally:
                log.close()

    def tail(self, lines: int = 30) -> str:
        """The end of every log, for a failure message."""
        out = []
        for proc, log, _at in self.started:
            log.flush()
            text = Path(log.name).read_text(errors="replace").splitlines()[-lines:]
            if text:
                out.append(f"--- {Path(log.name).name} (exit {proc.poll()})\n" + "\n".join(text))
        return "\n".join(out)


@pytest.fixture
def processes(config, tmp_path):
    """Start real ``nudge`` processes with the test's configuration; all are stopped when the test ends (every set,
    even when stopping another failed)."""
    with ExitStack() as stopping:

        def make(**settings: Any) -> Processes:
            procs = Processes(config, tmp_path / "logs", **settings)
            stopping.callback(procs.stop)
            return procs

        yield make
