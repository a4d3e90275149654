"""The tests' own clean-up of child processes (tests/servers.py ``reap``): a child that ignores SIGTERM is killed,
waited for, and its pipes closed, so nothing is left for a later garbage collection to warn about."""

from __future__ import annotations

import subprocess
import sys

from .servers import reap

STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
)


def test_a_child_ignoring_sigterm_is_killed_and_its_pipes_closed():
    proc = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline() == b"ready\n"
    reap(proc, timeout=0.5)
    assert proc.returncode == -9
    assert proc.stdout.closed and proc.stderr.closed
    reap(proc)  # again: nothing left to do, no error
