"""Every hook is documented, and each has a test here that drives it through a real plugin on the manager."""
from __future__ import annotations

import inspect
import types

import pytest
from flask import Blueprint

from server import hookspecs
from server.app import create_app
from server.engine.render import TemplateError, get_renderer
from server.hookspecs import hookimpl
from server.plugins import DEFAULT_PLUGINS, PluginManager
from server.sdk import Action, Channel, SendResult, Trigger

#: hook name -> the test that exercises it; filled by @covers as this module is imported
COVERED: dict[str, str] = {}


def covers(hook: str):
    def mark(test):
        COVERED[hook] = test.__name__
        return test
    return mark


def spec_problems(module: types.ModuleType) -> list[str]:
    """What is missing from the hookspecs' docstrings: a ``:param:`` per argument, ``:return:``, when it runs."""
    problems = []
    for name, function in inspect.getmembers(module, inspect.isfunction):
        if not hasattr(function, f"{hookspecs.PROJECT}_spec"):
            continue
        doc = inspect.getdoc(function) or ""
        for arg in inspect.signature(function).parameters:
            if f":param {arg}:" not in doc:
                problems.append(f"{name}: no :param {arg}:")
        if ":return:" not in doc:
            problems.append(f"{name}: no :return:")
        if "called" not in doc.lower():
            problems.append(f"{name}: does not say when it is called")
    return problems


def spec_names() -> set[str]:
    return {name for name, f in inspect.getmembers(hookspecs, inspect.isfunction)
            if hasattr(f, f"{hookspecs.PROJECT}_spec")}


def test_every_hookspec_documents_its_arguments_return_value_and_timing():
    assert spec_problems(hookspecs) == []
    assert {"register_channels", "register_triggers", "register_actions", "register_condition_functions",
            "register_blueprints", "register_template_filters", "startup"} <= spec_names()


def test_the_docstring_check_catches_an_undocumented_hook():
    module = types.ModuleType("fake_specs")

    @hookspecs.hookspec
    def register_widgets(config, app):
        """Return widgets. Called once.

        :param config: the settings.
        """

    module.register_widgets = register_widgets
    assert spec_problems(module) == ["register_widgets: no :param app:", "register_widgets: no :return:"]


def test_every_hookspec_has_a_test_of_its_own():
    missing = spec_names() - set(COVERED)
    assert not missing, f"hooks without a test in tests/plugins/test_hooks.py: {sorted(missing)}"


# -- a real plugin, registered on the manager like any other -----------------------------------
class Ping(Channel):
    name = "ping"
    address_field = "email"
    events = ("ping.delivered", "ping.opened")
    config_schema = {"PING_LOUDNESS": {"type": "int", "default": 3}}

    def send(self, message):
        return SendResult(provider_id=f"ping-{message.key}")


class ShopTrigger(Trigger):
    name = "shop"
    events = ("shop.order_paid", "shop.cart_abandoned")


class CrmPush(Action):
    name = "crm_push"

    def __init__(self):
        self.pushed = []

    def run(self, contact, args):
        self.pushed.append((contact["email"], dict(args)))


class SamplePlugin:
    """One plugin implementing every hook."""

    name = "sample"
    __version__ = "9.9"

    def __init__(self):
        self.crm = CrmPush()
        self.started: list = []
        self.configs: list = []

    @hookimpl
    def register_channels(self, config):
        self.configs.append(config)
        return [Ping]

    @hookimpl
    def register_triggers(self, config):
        return [ShopTrigger]

    @hookimpl
    def register_actions(self, config):
        return [self.crm]

    @hookimpl
    def register_condition_functions(self, config):
        return {"domain": lambda address: address.rpartition("@")[2].lower()}

    @hookimpl
    def register_template_filters(self, config):
        return {"shout": lambda value: f"{str(value).upper()}!", "balloon": lambda value: "x" * 2_000_000}

    @hookimpl
    def register_blueprints(self, app):
        bp = Blueprint("sample_pages", __name__, url_prefix="/sample")
        bp.add_url_rule("/hello", "hello", lambda: "hello from a plugin")
        return [bp]

    @hookimpl
    def startup(self, app):
        self.started.append((app, "sample_pages" in app.blueprints, "nudge.plugins" in app.extensions))


def manager(plugin) -> PluginManager:
    pm = PluginManager()
    pm.load({"SECRET": "x"}, default_plugins=(plugin,), use_entry_points=False)
    return pm


@pytest.fixture
def plugin():
    return SamplePlugin()


@pytest.fixture
def sample_app(config, plugin):
    app = create_app({**config, "PLUGINS": (*DEFAULT_PLUGINS, plugin)})
    yield app
    app.extensions["nudge.queue"].close()
    app.extensions["nudge.db"].dispose()


@covers("register_channels")
def test_register_channels_makes_the_channel_sendable_with_validated_settings(plugin):
    pm = manager(plugin)
    assert pm.channels == {"ping": Ping} and pm.infos["sample"].channels == ["ping"]
    assert plugin.configs[0]["SECRET"] == "x"
    with pytest.raises(TypeError):  # plugins get a read-only view of the settings
        plugin.configs[0]["SECRET"] = "changed"
    channel = pm.channel("ping", {"PING_LOUDNESS": "5"})
    assert channel.config["PING_LOUDNESS"] == 5
    assert pm.vocabulary_parts()["channels"] == ("ping",)
    assert {"ping.delivered", "ping.opened"} <= set(pm.vocabulary_parts()["events"])


def test_an_old_plugin_without_the_config_argument_still_works():
    class OldPlugin:
        @hookimpl
        def register_channels(self):  # written before the config argument existed
            return [Ping]

    assert manager(OldPlugin()).channels == {"ping": Ping}


@covers("register_triggers")
def test_register_triggers_adds_its_events_to_the_vocabulary(plugin):
    pm = manager(plugin)
    assert pm.triggers == {"shop": ShopTrigger}
    assert {"shop.order_paid", "shop.cart_abandoned"} <= set(pm.vocabulary_parts()["events"])


@covers("register_actions")
def test_register_actions_adds_a_step_the_engine_can_run(plugin):
    pm = manager(plugin)
    assert pm.vocabulary_parts()["actions"] == ("crm_push",)
    pm.actions["crm_push"].run({"email": "a@example.com"}, {"list": "vip"})
    assert plugin.crm.pushed == [("a@example.com", {"list": "vip"})]


@covers("register_condition_functions")
def test_register_condition_functions_adds_callable_functions(plugin):
    pm = manager(plugin)
    assert pm.vocabulary_parts()["functions"] == ("domain",)
    assert pm.condition_functions["domain"]("ana@Example.COM") == "example.com"


@covers("register_template_filters")
def test_register_template_filters_reach_the_sandbox_and_stay_bounded(sample_app):
    with sample_app.app_context():
        renderer = get_renderer()
        assert renderer.render_part("txt", "{{ contact.first_name|shout }}", {"contact": {"first_name": "ana"}}) \
            == "ANA!"
        with pytest.raises(TemplateError, match="grew past"):
            renderer.render_part("txt", "{{ 1|balloon }}", {})
    assert sample_app.extensions["nudge.plugins"].infos["sample"].filters == ["shout", "balloon"]


@covers("register_blueprints")
def test_register_blueprints_serves_the_plugin_pages(sample_app):
    response = sample_app.test_client().get("/sample/hello")
    assert response.status_code == 200 and response.text == "hello from a plugin"
    rows = {row["name"]: row for row in sample_app.extensions["nudge.plugins"].describe(sample_app)}
    assert rows["plugins.email_smtp"]["blueprints"] == ["email_hooks"]


@covers("startup")
def test_startup_runs_once_with_the_finished_app(sample_app, plugin):
    assert plugin.started == [(sample_app, True, True)]
