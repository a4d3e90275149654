"""Discovery: built-ins from DEFAULT_PLUGINS, third parties from real ``nudge.plugins`` entry points."""

from __future__ import annotations

import logging
import textwrap
import uuid

import pytest
from click.testing import CliRunner

from server.app import create_app
from server.cli import main
from server.plugins import ENTRY_POINT_GROUP, PluginError, PluginManager, build_plugin_manager


def install_dist(root, dist: str, version: str, modules: dict[str, str], entry_points: dict[str, str]) -> None:
    """Lay out an installed distribution (``*.dist-info`` with METADATA and entry_points.txt) plus its modules."""
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))


CHANNEL_PLUGIN = """
    from server.hookspecs import hookimpl
    from server.sdk import Channel

    class {cls}(Channel):
        name = "{channel}"
        events = ("{channel}.delivered",)

    @hookimpl
    def register_channels(config):
        return [{cls}]
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on sys.path where tests install distributions; module names are unique per test."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    suffix = uuid.uuid4().hex[:8]

    def install(dist, version, entry_points, modules):
        renamed = {f"{module}_{suffix}": source for module, source in modules.items()}
        targets = {name: f"{target}_{suffix}" for name, target in entry_points.items()}
        install_dist(root, dist, version, renamed, targets)

    return install


def load(**kwargs) -> PluginManager:
    pm = PluginManager()
    pm.load({}, default_plugins=kwargs.pop("default_plugins", ("plugins.email_smtp",)), use_entry_points=True)
    return pm


def test_a_broken_plugin_logs_one_error_and_the_others_load(site, caplog):
    site(
        "nudge-broken",
        "1.2.3",
        {"broken": "nudge_broken"},
        {"nudge_broken": "raise ImportError('needs libfrobnicate, which is not installed')\n"},
    )
    site(
        "nudge-good", "0.4.0", {"good": "nudge_good"}, {"nudge_good": CHANNEL_PLUGIN.format(cls="Good", channel="good")}
    )
    with caplog.at_level(logging.ERROR, logger="server.plugins"):
        pm = load()
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert "broken 1.2.3" in record.getMessage() and "needs libfrobnicate" in record.getMessage()
    assert {"good", "push", "email"} <= set(pm.channels) | set(pm.infos)
    assert pm.infos["good"].version == "0.4.0" and pm.infos["good"].dist == "nudge-good"
    assert [(f.name, f.version) for f in pm.failures] == [("broken", "1.2.3")]


def test_a_plugin_whose_hook_raises_is_skipped_alone(site, caplog):
    site(
        "nudge-angry",
        "2.0",
        {"angry": "nudge_angry"},
        {
            "nudge_angry": """
        from server.hookspecs import hookimpl

        @hookimpl
        def register_channels(config):
            raise RuntimeError("cannot reach the licence server")

        @hookimpl
        def register_template_filters(config):
            return {"angry": str.upper}
    """
        },
    )
    with caplog.at_level(logging.ERROR, logger="server.plugins"):
        pm = load()
    assert "angry" not in pm.infos and "angry" not in pm.template_filters and pm.get_plugin("angry") is None
    assert len(caplog.records) == 1 and "cannot reach the licence server" in caplog.records[0].getMessage()
    assert "push" in pm.channels


def test_a_plugin_with_a_wrong_hook_signature_is_skipped(site):
    site(
        "nudge-typo",
        "0.1",
        {"typo": "nudge_typo"},
        {
            "nudge_typo": """
        from server.hookspecs import hookimpl

        @hookimpl
        def register_channels(config, colour):
            return []
    """
        },
    )
    pm = load()
    [failure] = pm.failures
    assert failure.name == "typo" and "colour" in failure.error


def test_two_plugins_claiming_one_channel_is_a_start_up_error_naming_both(site):
    site(
        "nudge-copycat",
        "1.0",
        {"copycat": "nudge_copycat"},
        {"nudge_copycat": CHANNEL_PLUGIN.format(cls="Copy", channel="email")},
    )
    with pytest.raises(PluginError) as caught:
        load()
    assert (
        "'email'" in str(caught.value) and "plugins.email_smtp" in str(caught.value) and "copycat" in str(caught.value)
    )


def test_a_missing_builtin_plugin_is_a_start_up_error():
    with pytest.raises(PluginError, match=r"plugins.nonexistent.*NUDGE_PLUGINS"):
        build_plugin_manager({"PLUGINS": "plugins.email_smtp, plugins.nonexistent", "LOAD_ENTRY_POINTS": False})


def test_entry_points_can_be_switched_off():
    pm = build_plugin_manager({"LOAD_ENTRY_POINTS": False})
    assert "push" not in pm.channels and set(pm.channels) >= {"email"}


def test_the_vocabulary_comes_from_the_registered_plugins():
    parts = build_plugin_manager({"LOAD_ENTRY_POINTS": True}).vocabulary_parts()
    assert {"email", "push"} <= set(parts["channels"])
    assert {
        "email.delivered",
        "email.opened",
        "email.clicked",
        "email.bounced",
        "email.unsubscribed",
        "push.opened",
    } <= set(parts["events"])


# -- the example package, installed with pip, end to end -----------------------------------------
@pytest.fixture
def app_with_entry_points(config):
    app = create_app({**config, "LOAD_ENTRY_POINTS": True})
    yield app
    app.extensions["nudge.queue"].close()
    app.extensions["nudge.db"].dispose()


def test_the_example_push_plugin_is_discovered_from_its_entry_point(app_with_entry_points):
    pm = app_with_entry_points.extensions["nudge.plugins"]
    info = pm.infos["push"]
    assert (info.source, info.dist, info.version) == ("entry point", "nudge-example-push", "0.1.0")
    channel = pm.channel("push", app_with_entry_points.config)
    assert channel.config["PUSH_GATEWAY_URL"] == "http://127.0.0.1:8089"  # the schema's default, validated
    assert "push.opened" in pm.vocabulary_parts()["events"]


def test_nudge_plugins_lists_versions_registrations_and_failures(app, runner, monkeypatch, site):
    site("nudge-broken", "1.2.3", {"broken": "nudge_broken"}, {"nudge_broken": "import no_such_module_here\n"})
    monkeypatch.setenv("NUDGE_LOAD_ENTRY_POINTS", "true")
    result = runner.invoke(["plugins"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "push 0.1.0  (entry point of nudge-example-push)" in lines
    assert "plugins.email_smtp 0.2.0  (built-in)" in lines
    assert "  blueprints: email_hooks" in lines and "  channels: push" in lines
    assert any(line.startswith("broken 1.2.3  FAILED to load: ModuleNotFoundError") for line in lines)


def test_nudge_plugins_names_both_plugins_of_a_conflict(tmp_path, redis_server, monkeypatch, site):
    settings = {"HOME": tmp_path, "REDIS_URL": redis_server.url, "SECRET_KEY": "test-secret-key-0123456789"}
    instance = create_app({**settings, "LOAD_ENTRY_POINTS": False})  # the instance exists before the conflict
    instance.extensions["nudge.queue"].close()
    instance.extensions["nudge.db"].dispose()
    site(
        "nudge-copycat",
        "1.0",
        {"copycat": "nudge_copycat"},
        {"nudge_copycat": CHANNEL_PLUGIN.format(cls="Copy", channel="push")},
    )
    # SQLite: start-up stops before the app exists, so nothing could close a server connection
    for key, value in {**settings, "LOAD_ENTRY_POINTS": "true"}.items():
        monkeypatch.setenv(f"NUDGE_{key}", str(value))
    result = CliRunner().invoke(main, ["plugins"])
    assert result.exit_code == 1
    assert "channel 'push' is registered by two plugins" in result.output and "copycat" in result.output
