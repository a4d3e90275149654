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
from server.plugins import DEFAULT_PLUGINS, PluginError, PluginManager
from server.sdk import Action, Channel, ConditionFunction, SendResult, Trigger

from ..helpers import api_key, post_event, run_worker

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
    return {
        name for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(f, f"{hookspecs.PROJECT}_spec")
    }


def test_every_hookspec_documents_its_arguments_return_value_and_timing():
    assert spec_problems(hookspecs) == []
    assert {
        "register_channels",
        "register_triggers",
        "register_actions",
        "register_condition_functions",
        "register_blueprints",
        "register_template_filters",
        "startup",
    } <= spec_names()


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


def email_domain(address: str) -> str:
    """What follows the first ``@``, lowercased (the whole text when there is none), as the SQL forms do."""
    return address[address.find("@") + 1 :].lower()


def check_credit(address: str) -> bool:
    raise RuntimeError(f"credit bureau unreachable while checking {address}")


FUNCTIONS = [
    ConditionFunction(
        "domain",
        ("string",),
        "string",
        email_domain,
        sql={
            "sqlite": "lower(substr({0}, instr({0}, '@') + 1))",
            "postgresql": "lower(substr({0}, strpos({0}, '@') + 1))",
        },
        description="the domain of an email address",
    ),
    ConditionFunction("free_mail", ("string",), "bool", lambda address: email_domain(address) in {"gmail.com"}),
    ConditionFunction("credit_ok", ("string",), "bool", check_credit),
]


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
        return FUNCTIONS

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


@pytest.mark.parametrize(
    "declarations, problem",
    [
        (
            {"domain": email_domain},
            "returned a plain function for 'domain', not a server.sdk.ConditionFunction; "
            "declare the parameter and result types",
        ),
        ([ConditionFunction("now", (), "bool", bool)], "condition function name 'now' is a keyword of the rules"),
        ([ConditionFunction("two words", (), "bool", bool)], "condition function name 'two words' is not a name"),
        ([ConditionFunction("f", ("text",), "bool", bool)], "f(): params must be a tuple of types (any, bool, date,"),
        ([ConditionFunction("f", ("string",), "colour", bool)], "f(): result must be one of any, bool, date,"),
        ([ConditionFunction("f", ("string",), "bool", "bool")], "f(): implementation 'bool' is not callable"),
        (
            [ConditionFunction("f", ("date",), "bool", bool, sql={"sqlite": "{0} > 1"})],
            "f(): an SQL form takes and gives only strings, numbers and true/false",
        ),
        ([ConditionFunction("f", ("string",), "bool", bool, sql={"mysql": "{0}"})], "f(): no database called 'mysql'"),
        (
            [ConditionFunction("f", ("string",), "bool", bool, sql={"sqlite": "{1} = {0}"})],
            "f(): the sqlite SQL form uses {1}, but the function takes 1 argument(s) ({0} is the first)",
        ),
    ],
)
def test_a_bad_declaration_is_refused_with_what_to_fix(declarations, problem):
    class Declaring:
        @hookimpl
        def register_condition_functions(self, config):
            return declarations

    with pytest.raises(PluginError, match="register_condition_functions: ") as raised:
        manager(Declaring())
    assert problem in str(raised.value)


def test_two_plugins_declaring_one_function_name_is_an_error_naming_both(plugin):
    class Copycat:
        name = "copycat"

        @hookimpl
        def register_condition_functions(self, config):
            return [ConditionFunction("domain", ("string",), "string", email_domain)]

    pm = PluginManager()
    with pytest.raises(
        PluginError, match="condition function 'domain' is registered by two plugins: sample and copycat"
    ):
        pm.load({}, default_plugins=(plugin, Copycat()), use_entry_points=False)


COMPANY_RULE = (
    'rule "Company sign-ups"\n'
    'when form.submitted and domain(contact.email) == "example.com" and not free_mail(contact.email) then\n'
    '  tag "company"\n  send email welcome\nend\n'
)


@covers("register_condition_functions")
def test_register_condition_functions_a_rule_calls_them_and_the_engine_acts(sample_app, smtp_server):
    client, admin = sample_app.test_client(), {"Authorization": f"Bearer {api_key(sample_app, 'admin')}"}
    saved = client.put("/api/v1/rules", json={"text": COMPANY_RULE}, headers=admin)
    assert saved.status_code == 200, saved.json
    key = api_key(sample_app)
    for address in ("ana@Example.COM", "bob@other.org", "cy@gmail.com"):
        assert post_event(client, key, email=address).status_code == 202
    run_worker(sample_app)
    assert len(smtp_server.wait_for(1)) == 1
    assert smtp_server.handler.envelopes == [(smtp_server.handler.envelopes[0][0], ["ana@example.com"])]
    assert b"thanks for signing up" in smtp_server.raw[0]
    tagged = {c["email"]: c["tags"] for c in client.get("/api/v1/contacts", headers=admin).json["data"]}
    assert tagged == {"ana@example.com": ["company"], "bob@other.org": [], "cy@gmail.com": []}


def test_calls_are_checked_against_the_declared_functions_when_rules_are_saved(sample_app):
    client, admin = sample_app.test_client(), {"Authorization": f"Bearer {api_key(sample_app, 'admin')}"}
    bad = client.put("/api/v1/rules", headers=admin, json={"text": COMPANY_RULE.replace("domain(", "domian(")})
    assert bad.status_code == 422
    assert bad.json["detail"] == 'rules.nudge:2:25: unknown function "domian" — did you mean "domain"?'
    typed = client.put("/api/v1/rules", headers=admin, json={"text": COMPANY_RULE.replace('== "example.com"', "== 3")})
    assert typed.json["detail"] == "rules.nudge:2:25: cannot compare a string with a number"


def test_a_function_that_fails_leaves_its_condition_untrue_and_the_journey_log_says_why(sample_app, smtp_server):
    client, admin = sample_app.test_client(), {"Authorization": f"Bearer {api_key(sample_app, 'admin')}"}
    rules = (
        'rule "Credit"\nwhen form.submitted then\n  if credit_ok(contact.email) then\n    tag "approved"\n'
        '  else\n    tag "manual review"\n  end\nend\n'
    )
    assert client.put("/api/v1/rules", json={"text": rules}, headers=admin).status_code == 200
    post_event(client, api_key(sample_app), email="ana@example.com")
    run_worker(sample_app)
    [contact] = client.get("/api/v1/contacts", headers=admin).json["data"]
    assert contact["tags"] == ["manual review"]
    trace = client.get(f"/api/v1/contacts/{contact['id']}/journeys", headers=admin).json["items"]
    [failed] = [line for line in trace if line["action"] == "function_failed"]
    assert failed["rule"] == "Credit"
    assert failed["text"] == (
        "condition function credit_ok() could not run (RuntimeError: credit bureau "
        "unreachable while checking [email]); the call had no value, so what depended "
        "on it was not true"
    )


def test_segments_count_with_a_functions_sql_form_and_refuse_one_without(sample_app):
    client, admin = sample_app.test_client(), {"Authorization": f"Bearer {api_key(sample_app, 'admin')}"}
    for address in ("ana@Example.COM", "bo@example.com", "cy@other.org", "dee@gmail.com"):
        client.post("/api/v1/contacts", json={"email": address}, headers=admin)
    made = client.post(
        "/api/v1/segments",
        headers=admin,
        json={"name": "example", "condition": 'domain(contact.email) == "example.com"'},
    )
    assert made.status_code == 201 and made.json["count"] == 2
    members = client.get("/api/v1/segments/example/members", headers=admin).json["data"]
    assert sorted(m["email"] for m in members) == ["ana@example.com", "bo@example.com"]
    with sample_app.app_context():  # counted by the database, through the SQL form (no Python fallback)
        from server.db import get_session
        from server.segments import compile_condition, members_clause

        session = get_session()
        members_clause(session, compile_condition(session, 'domain(contact.email) in ["gmail.com"]').tree)
    refused = client.post(
        "/api/v1/segments/preview", headers=admin, json={"condition": 'tag == "vip" or\n  free_mail(contact.email)'}
    )
    assert refused.status_code == 422 and refused.json["field"] == "condition"
    assert refused.json["detail"].startswith(
        "condition:2:3: `free_mail()` has no SQL form, so a segment "
        "cannot use it (segments are counted by the database;"
    )


@covers("register_template_filters")
def test_register_template_filters_reach_the_sandbox_and_stay_bounded(sample_app):
    with sample_app.app_context():
        renderer = get_renderer()
        assert (
            renderer.render_part("txt", "{{ contact.first_name|shout }}", {"contact": {"first_name": "ana"}}) == "ANA!"
        )
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


def test_a_stored_segment_calling_a_function_without_sql_is_refused_for_broadcasts_but_rules_still_see_it(sample_app):
    from server.db import get_session
    from server.engine.broadcast import BroadcastError, create_broadcast
    from server.models import Segment

    client, admin = sample_app.test_client(), {"Authorization": f"Bearer {api_key(sample_app, 'admin')}"}
    with sample_app.app_context():  # stored before its function lost the SQL form (an upgraded plugin, say)
        session = get_session()
        session.add(Segment(name="free mail", condition='tag == "x" or\n  free_mail(contact.email)'))
        session.commit()
        with pytest.raises(BroadcastError) as raised:
            create_broadcast(session, sample_app.extensions["nudge.plugins"], "email", "welcome", "free mail")
    assert str(raised.value).startswith(
        "segment 'free mail' cannot be used for a broadcast: condition:2:3: "
        "`free_mail()` has no SQL form, so a segment cannot use it ("
    )
    rules = 'rule "Free mail"\nwhen form.submitted and in segment "free mail" then\n  tag "free"\nend\n'
    assert client.put("/api/v1/rules", json={"text": rules}, headers=admin).status_code == 200
    for address in ("cy@gmail.com", "ana@example.com"):
        post_event(client, api_key(sample_app), email=address)
    run_worker(sample_app)  # membership is evaluated contact by contact, with the Python implementation
    tagged = {c["email"]: c["tags"] for c in client.get("/api/v1/contacts", headers=admin).json["data"]}
    assert tagged == {"cy@gmail.com": ["free"], "ana@example.com": []}


def test_a_function_failing_inside_a_segment_a_rule_tests_is_traced_in_that_journey(sample_app, smtp_server):
    """``in segment`` evaluated contact by contact runs the segment's calls with the rule's journey log."""
    from server.db import get_session
    from server.models import Segment

    client, admin = sample_app.test_client(), {"Authorization": f"Bearer {api_key(sample_app, 'admin')}"}
    with sample_app.app_context():  # no SQL form: membership is evaluated in Python, through the rule's scope
        get_session().add(Segment(name="approved", condition="credit_ok(contact.email)"))
        get_session().commit()
    rules = (
        'rule "Credit"\nwhen form.submitted then\n  if in segment "approved" then\n    tag "approved"\n'
        '  else\n    tag "manual review"\n  end\nend\n'
    )
    assert client.put("/api/v1/rules", json={"text": rules}, headers=admin).status_code == 200
    post_event(client, api_key(sample_app), email="ana@example.com")
    run_worker(sample_app)
    [contact] = client.get("/api/v1/contacts", headers=admin).json["data"]
    assert contact["tags"] == ["manual review"]
    trace = client.get(f"/api/v1/contacts/{contact['id']}/journeys", headers=admin).json["items"]
    [failed] = [line for line in trace if line["action"] == "function_failed"]
    assert failed["rule"] == "Credit" and failed["text"].startswith("condition function credit_ok() could not run")
