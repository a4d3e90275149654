"""mypy, as configured in setup.cfg: strict on dsl/ and the plugin API, clean at its defaults on the engine.

The rest of server/ and plugins/ is checked with the same configuration by `mypy` itself (no arguments).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: the parts that must have no type errors at all
CLEAN = re.compile(r"^(dsl/|server/sdk/|server/engine/)")


def _mypy(cache: Path, *args: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(cache), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "error: " in result.stdout or result.returncode == 0, result.stdout + result.stderr
    return [line for line in result.stdout.splitlines() if ": error: " in line]


@pytest.mark.slow
def test_dsl_the_sdk_and_the_engine_type_check():
    # mypy's own cache, the one `make test` has just filled by running `mypy` before the suite: the same check again
    # from nothing would cost the suite half a minute (mypy re-checks whatever changed since, so the answer is the same)
    errors = [line for line in _mypy(ROOT / ".mypy_cache") if CLEAN.match(line)]
    assert errors == [], "\n".join(errors)


def test_the_strict_modules_are_checked_strictly(tmp_path):
    # an unannotated function passes mypy's default settings; in dsl/ it is an error
    (tmp_path / "dsl").mkdir()
    (tmp_path / "dsl" / "__init__.py").write_text("")  # so the probe is the module dsl.probe
    probe = tmp_path / "dsl" / "probe.py"
    probe.write_text("def untyped(x):\n    return x\n")
    config = ROOT / "setup.cfg"
    errors = _mypy(tmp_path / "cache", "--config-file", str(config), str(probe))
    assert any("[no-untyped-def]" in line for line in errors), errors
