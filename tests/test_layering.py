"""Layers point one way, and no package's modules import each other in a circle: ``lint-imports`` checks the
contracts declared in setup.cfg (``[importlinter]``), and a wrong arrow fails here, so ``make test`` fails."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(cwd: Path, config: Path | None = None) -> subprocess.CompletedProcess:
    command = [str(LINT_IMPORTS), "--no-cache", *([str(config)] if config else [])]
    return subprocess.run(
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(cwd)},
    )


def test_every_import_contract_is_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 5 kept, 0 broken." in result.stdout


def test_plugins_are_kept_from_every_module_of_server_but_the_plugin_api():
    """The plugin contract lists what plugins may not import: every module of server, so none is forgotten."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    forbidden = set(config["importlinter:contract:plugins-use-the-plugin-api"]["forbidden_modules"].split())
    modules = {
        f"server.{path.stem if path.is_file() else path.name}"
        for path in (ROOT / "server").iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").is_file()
    }
    assert modules - forbidden == {"server.sdk", "server.hookspecs"}
    assert forbidden <= modules


def test_the_contracts_catch_a_cycle_and_a_plugin_reaching_into_nudge(tmp_path):
    """Guards the tests above: the same contract types fail on a cycle and on a plugin importing the models."""
    for name, text in {
        "server/__init__.py": "",
        "server/sdk.py": "",
        "server/models.py": "",
        "server/engine/__init__.py": "",
        "server/engine/a.py": "from . import b\n",
        "server/engine/b.py": "from . import a\n",
        "plugins/__init__.py": "",
        "plugins/bad.py": "from server.models import Contact\n",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "contracts.ini").write_text(
        "[importlinter]\nroot_packages =\n    server\n    plugins\n\n"
        "[importlinter:contract:plugins]\nname = plugins\ntype = forbidden\nsource_modules =\n    plugins\n"
        "forbidden_modules =\n    server.models\n\n"
        "[importlinter:contract:cycles]\nname = cycles\ntype = acyclic_siblings\nancestors =\n    server\n"
    )
    result = lint_imports(tmp_path, tmp_path / "contracts.ini")
    assert result.returncode == 1
    assert "Contracts: 0 kept, 2 broken." in result.stdout
    assert "plugins.bad -> server.models" in result.stdout and ".a -> .b" in result.stdout + result.stdout.replace(
        ".b -> .a", ".a -> .b"
    )
