"""The deployment files under deploy/ (docs/deploy.md): the compose file and the systemd units run real ``nudge``
commands with real options, set only real settings, keep their data in volumes, and the docs point at them."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from server.cli import main
from server.config import SETTINGS
from server.plugins import DEFAULT_PLUGINS, PluginManager

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNITS = ("nudge.service", "nudge-web.service", "nudge-worker@.service", "nudge-scheduler.service")
#: the instances docs/deploy.md starts of the worker template
WORKER_INSTANCES = ("engine", "send", "all")


def known_settings() -> set[str]:
    """Every NUDGE_* variable Nudge reads: the core's and the built-in plugins'."""
    pm = PluginManager()
    pm.load({}, default_plugins=DEFAULT_PLUGINS, use_entry_points=False)
    names = set(SETTINGS)
    for channel in pm.channels.values():
        names |= set(channel.config_schema)
    return {f"NUDGE_{name}" for name in names}


def parse_nudge(argv: list[str]) -> click.Command:
    """Parse *argv* (``nudge …``) as the CLI would, without running it; raises on an unknown command or option."""
    assert Path(argv[0]).name == "nudge", argv
    args = list(argv[1:])
    ctx = click.Context(main, info_name="nudge")
    command: click.Command = main
    name = "nudge"
    while isinstance(command, click.Group):
        name, sub, args = command.resolve_command(ctx, args)  # raises UsageError for an unknown command
        assert sub is not None and name is not None
        if isinstance(sub, click.Group):
            ctx = click.Context(sub, info_name=name, parent=ctx)
        command = sub
    command.make_context(name, list(args), parent=ctx)  # raises on an unknown option or a bad value
    return command


def test_parse_nudge_refuses_what_is_not_a_command():
    with pytest.raises(click.UsageError):
        parse_nudge(["nudge", "wrker"])
    with pytest.raises(click.BadParameter):
        parse_nudge(["nudge", "worker", "--queues", "mail"])
    with pytest.raises(click.NoSuchOption):
        parse_nudge(["nudge", "scheduler", "--every", "5"])


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def test_compose_has_the_production_services_running_real_commands():
    spec = compose()
    services = spec["services"]
    assert set(services) == {
        "postgres",
        "redis",
        "migrate",
        "web",
        "worker-engine",
        "worker-send",
        "scheduler",
        "caddy",
    }
    commands = {name: s["command"] for name, s in services.items() if s.get("image") == "nudge:latest"}
    assert set(commands) == {"migrate", "web", "worker-engine", "worker-send", "scheduler"}
    ran = {name: parse_nudge(argv).name for name, argv in commands.items()}
    assert ran == {
        "migrate": "upgrade",
        "web": "web",
        "worker-engine": "worker",
        "worker-send": "worker",
        "scheduler": "scheduler",
    }
    assert commands["worker-engine"][-1] == "engine" and commands["worker-send"][-1] == "send"
    # every Nudge service waits for the migration; the image it builds has a Dockerfile whose command is real too
    for name in commands:
        if name != "migrate":
            assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    build = services["web"]["build"]
    dockerfile = (DEPLOY / build["context"] / build["dockerfile"]).resolve()
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile.read_text(), re.M)
    assert cmd is not None and parse_nudge(yaml.safe_load(cmd[1])).name == "web"
    # Caddy proxies to the port the web service listens on
    caddyfile = (DEPLOY / "Caddyfile").read_text()
    port = commands["web"][commands["web"].index("--port") + 1]
    assert f"reverse_proxy web:{port}" in caddyfile
    assert "./Caddyfile:/etc/caddy/Caddyfile:ro" in services["caddy"]["volumes"]


def test_compose_and_env_example_set_only_real_settings():
    known = known_settings()
    spec = compose()
    used = set()
    for service in spec["services"].values():
        if service.get("image") == "nudge:latest":  # Caddy's NUDGE_DOMAIN is Caddy's own
            used |= set(service.get("environment") or {})
    example = (DEPLOY / "nudge.env.example").read_text()
    used |= set(re.findall(r"^(NUDGE_[A-Z_]+)=", example, re.M))
    assert "NUDGE_DATABASE_URL" in used and "NUDGE_SECRET_KEY" in used
    assert used - known == set()


def test_compose_keeps_data_in_named_volumes():
    spec = compose()
    services = spec["services"]

    def mounts(name: str) -> dict[str, str]:
        return {v.split(":")[1]: v.split(":")[0] for v in services[name]["volumes"]}

    wanted = {"postgres": "/var/lib/postgresql/data", "redis": "/data", "web": "/var/lib/nudge", "caddy": "/data"}
    for name, path in wanted.items():
        volume = mounts(name).get(path)
        assert volume in spec["volumes"], f"{name}: {path} is not on a named volume"


def units() -> dict[str, configparser.RawConfigParser]:
    parsed = {}
    for name in UNITS:
        parser = configparser.RawConfigParser(strict=False, delimiters=("=",))
        parser.optionxform = str  # keys are case-sensitive in systemd
        parser.read_string((DEPLOY / "systemd" / name).read_text())
        parsed[name] = parser
    return parsed


def test_systemd_units_run_real_commands():
    ran = {}
    for name, unit in units().items():
        assert {"Unit", "Service", "Install"} <= set(unit.sections()), name
        exec_start = unit["Service"]["ExecStart"]
        instances = WORKER_INSTANCES if "%i" in exec_start else ("",)
        for instance in instances:
            ran[(name, instance)] = parse_nudge(shlex.split(exec_start.replace("%i", instance))).name
        assert unit["Service"]["User"] == "nudge"
        assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert ran == {
        ("nudge.service", ""): "up",
        ("nudge-web.service", ""): "web",
        **{("nudge-worker@.service", i): "worker" for i in WORKER_INSTANCES},
        ("nudge-scheduler.service", ""): "scheduler",
    }


def test_systemd_analyze_verifies_the_units(tmp_path):
    """systemd's own check, with ExecStart pointing at this environment's ``nudge`` (it must exist to verify)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:  # not a skip: the parse above still holds; this is systemd's second opinion
        return
    nudge = Path(sys.executable).parent / "nudge"
    assert nudge.exists()
    names = []
    for name in UNITS:
        text = (DEPLOY / "systemd" / name).read_text().replace("/opt/nudge/venv/bin/nudge", str(nudge))
        target = tmp_path / name.replace("@.", "@engine.")
        target.write_text(text)
        names.append(str(target))
    result = subprocess.run([analyze, "verify", *names], capture_output=True, text=True, timeout=120)
    problems = [line for line in result.stderr.splitlines() if "nudge" in line and "EnvironmentFile" not in line]
    assert result.returncode == 0 and problems == [], result.stderr


def test_the_deployment_guide_names_every_file():
    guide = (ROOT / "docs" / "deploy.md").read_text()
    for path in (
        "deploy/docker-compose.yml",
        "deploy/Dockerfile",
        "deploy/Caddyfile",
        "deploy/nginx.conf",
        "deploy/nudge.env.example",
        *(f"deploy/systemd/{name}" for name in UNITS),
    ):
        assert path in guide, path
        assert (ROOT / path).exists(), path
    # the commands its code blocks and tables tell people to run exist, with those options
    found = re.findall(r"(?:/opt/nudge/venv/bin/|^    |\| `)(nudge [a-z][^`#\n]*)", guide, re.M)
    assert len(found) >= 6, found  # the roles table and the set-up steps
    for line in found:
        parse_nudge(shlex.split(line))
