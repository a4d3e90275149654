"""The real ``nudge`` command in child processes, run from a chosen folder with chosen settings."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "welcome"


def nudge(
    *args: str, cwd: Path, env: dict[str, str] | None = None, input: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m server.cli ARGS`` in *cwd*, with no ``NUDGE_*`` setting but those in *env*."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_")}
    full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=cwd,
        env=full,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Up:
    """``nudge up ARGS`` as a child process, its output read line by line until it says it is up."""

    def __init__(self, *args: str, env: dict[str, str], cwd: Path | None = None):
        full = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_")}
        full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        full.update(env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "up", *args],
            cwd=cwd,
            env=full,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._up = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            if "Press Ctrl-C" in line:
                self._up.set()

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def wait_up(self, timeout: float = 90) -> bool:
        return self._up.wait(timeout)

    def close(self) -> None:
        """Kill what is still running (the child and everything it started), then stop reading."""
        if self.proc.poll() is None:
            children = psutil.Process(self.proc.pid).children(recursive=True)
            self.proc.kill()
            for child in children:
                child.kill()
            self.proc.wait()
        self._reader.join(10)
        self.proc.stdout.close()
