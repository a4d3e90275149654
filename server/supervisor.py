"""``nudge up``: run web, worker and scheduler as child processes and stop them all together."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGTERM this process when its parent (the supervisor, nudge web's parent) dies, even with -9."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


@dataclass
class Supervisor:
    """Starts named commands, watches them, and stops every one of them on a signal or a crash."""

    env: Mapping[str, str]
    grace: float = 15.0
    echo: Callable[[str], None] = print
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _stopping: bool = False
    _signal: int | None = None

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        preexec_fn = die_with_parent if sys.platform.startswith("linux") else None
        # own session: a Ctrl-C in the terminal reaches only us, and we stop the children in order
        proc = subprocess.Popen(
            args, env=dict(self.env), stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=preexec_fn
        )
        self.procs[name] = proc
        return proc

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signal = signum
        self._stopping = True

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def wait_http(self, url: str, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stopping:
            if self.crashed():
                return False
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.2)
        return False

    def crashed(self) -> str | None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                return name
        return None

    def run(self, poll: float = 0.5) -> int:
        """Block until a signal (exit 0) or a child's death (exit 1), then stop everything."""
        code = 0
        while not self._stopping:
            dead = self.crashed()
            if dead:
                self.echo(
                    f"nudge: the {dead} process exited with code {self.procs[dead].returncode}; stopping the rest"
                )
                code = 1
                break
            time.sleep(poll)
        self.stop()
        return code

    def stop(self) -> None:
        """SIGTERM every child, wait up to ``grace`` seconds, then SIGKILL what is left."""
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for name, proc in self.procs.items():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.echo(f"nudge: the {name} process did not stop in {self.grace:.0f}s; killing it")
                proc.kill()
                proc.wait()


def child_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "server.cli", *args]


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
