"""The plugin manager: built-in plugins from ``DEFAULT_PLUGINS``, third-party ones from entry points.

Each third-party plugin is loaded on its own: one that fails to import, to register
or to answer a ``register_*`` hook is logged once (name, version, error), listed by
``nudge plugins`` and skipped; the others load. Two plugins claiming one name (a
channel, an action …) is a start-up error naming both.
"""
from __future__ import annotations

import importlib
import logging
import re
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any, Callable, Mapping, NamedTuple

import pluggy

from . import hookspecs
from .config import ConfigError
from .functions import problem as function_problem
from .sdk import Channel, ConditionFunction, DeliveryStatus, SettingError, validate_schema, validate_settings

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "nudge.plugins"

#: Nudge's own plugins, registered exactly as a third party's would be.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "plugins.email_smtp",
    "plugins.sms_twilio",
    "plugins.webhook",
)


class PluginError(Exception):
    """Plugins conflict in a way Nudge cannot start with; the message names them."""


class PluginFailure(NamedTuple):
    """A plugin that was skipped: its name, version and the error, for ``nudge plugins``."""

    name: str
    version: str
    error: str


@dataclass
class PluginInfo:
    """One loaded plugin and what it registered."""

    name: str
    version: str
    module: Any
    source: str = "built-in"  # or "entry point" (with the distribution name in ``dist``)
    dist: str | None = None
    channels: list[str] = field(default_factory=list)
    triggers: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    conditions: list[str] = field(default_factory=list)
    filters: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)


class _Skip(Exception):
    """A third-party plugin failed while registering; it is dropped, the rest go on."""


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus Nudge's registry of what each plugin provides."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self.failures: list[PluginFailure] = []
        self.channels: dict[str, type[Channel]] = {}
        self.triggers: dict[str, Any] = {}
        self.actions: dict[str, Any] = {}
        self.condition_functions: dict[str, ConditionFunction] = {}
        self.template_filters: dict[str, Callable[..., Any]] = {}
        self.settings: dict[str, dict[str, Any]] = {}  # channel name -> its validated settings
        self._owners: dict[tuple[str, str], str] = {}  # (kind, name) -> plugin name
        self._builtin: set[str] = set()

    # -- loading ---------------------------------------------------------------
    def load(self, config: Mapping[str, Any], default_plugins: tuple[Any, ...] = DEFAULT_PLUGINS,
             use_entry_points: bool = True) -> None:
        """Register the built-in plugins, then every ``nudge.plugins`` entry point, then collect what they provide.

        :param default_plugins: module names (or plugin objects) registered as built-ins: they must load.

        :raises PluginError: when a built-in plugin cannot be imported or two plugins claim one name.
        """
        for entry in default_plugins:
            if isinstance(entry, str):
                try:
                    module = importlib.import_module(entry)
                except ImportError as exc:
                    raise PluginError(f"built-in plugin {entry} cannot be imported: {exc} (check NUDGE_PLUGINS)") \
                        from exc
                name = entry
            else:  # a plugin object (an embedding application's own, or a test's)
                module, name = entry, str(getattr(entry, "name", None) or type(entry).__name__)
            self._builtin.add(name)
            self._add(PluginInfo(name=name, version=str(getattr(module, "__version__", "built-in")), module=module))
        if use_entry_points:
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                self._load_entry_point(ep)
        frozen = MappingProxyType(dict(config))
        for name in list(self.infos):
            try:
                self._collect(self.infos[name], frozen)
            except _Skip:
                continue

    def _load_entry_point(self, ep: Any) -> None:
        dist = ep.dist.name if ep.dist is not None else None
        version = ep.dist.version if ep.dist is not None else "unknown"
        if ep.name in self.infos:
            self._fail(ep.name, version, f"the name is already used by the plugin from {self.infos[ep.name].module!r}")
            return
        try:
            module = ep.load()
        except Exception as exc:  # a broken plugin must not take Nudge down
            self._fail(ep.name, version, f"{type(exc).__name__}: {exc}")
            return
        if self.is_registered(module):
            return  # the same module under another name (e.g. a built-in also declared as entry point)
        try:
            self._add(PluginInfo(name=ep.name, version=version, module=module, source="entry point", dist=dist))
        except Exception as exc:  # pluggy refuses hook implementations that do not match their spec
            self._fail(ep.name, version, f"{type(exc).__name__}: {exc}")

    def _add(self, info: PluginInfo) -> None:
        self.register(info.module, name=info.name)
        self.infos[info.name] = info

    def _fail(self, name: str, version: str, error: str) -> None:
        log.error("plugin %s %s failed to load and was skipped: %s", name, version, error)
        self.failures.append(PluginFailure(name, version, error))

    def _call(self, info: PluginInfo, hook: str, **kwargs: Any) -> list[Any]:
        """Call one plugin's implementation of *hook* (keyword arguments only)."""
        results = []
        for impl in getattr(self.hook, hook).get_hookimpls():
            if impl.plugin_name != info.name:
                continue
            try:
                value = impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})
            except Exception as exc:
                if info.name in self._builtin:
                    raise
                self._fail(info.name, info.version, f"{hook} raised {type(exc).__name__}: {exc}")
                self._drop(info)
                raise _Skip from None
            if value is not None:
                results.append(value)
        return results

    def _drop(self, info: PluginInfo) -> None:
        self.unregister(name=info.name)
        del self.infos[info.name]
        for (kind, name), owner in list(self._owners.items()):
            if owner == info.name:
                del self._owners[(kind, name)]
                self._registry(kind).pop(name, None)

    def _registry(self, kind: str) -> dict[str, Any]:
        return {"channel": self.channels, "trigger": self.triggers, "action": self.actions,
                "condition function": self.condition_functions, "template filter": self.template_filters}[kind]

    def _claim(self, kind: str, name: str, info: PluginInfo) -> None:
        if not name:
            raise PluginError(f"plugin {info.name} registers a {kind} without a name")
        owner = self._owners.get((kind, name))
        if owner is not None:
            raise PluginError(f"{kind} {name!r} is registered by two plugins: {owner} and {info.name}; "
                              "uninstall or disable one of them")
        self._owners[(kind, name)] = info.name

    def _collect(self, info: PluginInfo, config: Mapping[str, Any]) -> None:
        """Ask one plugin what it provides; raises :class:`_Skip` when a third-party plugin fails."""
        found = {hook: [item for batch in self._call(info, hook, config=config) for item in _items(batch)]
                 for hook in ("register_channels", "register_triggers", "register_actions",
                              "register_condition_functions", "register_template_filters")}
        for cls in found["register_channels"]:
            if not (isinstance(cls, type) and issubclass(cls, Channel)):
                self._bad(info, f"register_channels returned {cls!r}, not a server.sdk.Channel subclass")
            if not _local_window(cls.quiet_hours):
                self._bad(info, f"channel {cls.name!r} declares quiet_hours = {cls.quiet_hours!r}; "
                                "use None or two local times, e.g. (\"21:00\", \"08:00\")")
            self._claim("channel", cls.name, info)
            self.channels[cls.name] = cls
            info.channels.append(cls.name)
            info.events.extend(cls.events)
        for trigger in found["register_triggers"]:
            self._claim("trigger", getattr(trigger, "name", ""), info)
            self.triggers[trigger.name] = trigger
            info.triggers.append(trigger.name)
            info.events.extend(getattr(trigger, "events", ()))
        for action in found["register_actions"]:
            self._claim("action", getattr(action, "name", ""), info)
            self.actions[action.name] = action
            info.actions.append(action.name)
        for function in found["register_condition_functions"]:
            problem = function_problem(function)
            if problem:
                self._bad(info, f"register_condition_functions: {problem}")
            self._claim("condition function", function.name, info)
            self.condition_functions[function.name] = function
            info.conditions.append(function.name)
        for name, function in found["register_template_filters"]:
            if not callable(function):
                self._bad(info, f"register_template_filters returned {function!r} for {name!r}, which is not callable")
            self._claim("template filter", name, info)
            self.template_filters[name] = function
            info.filters.append(name)

    def _bad(self, info: PluginInfo, problem: str) -> None:
        if info.name in self._builtin:
            raise PluginError(f"plugin {info.name}: {problem}")
        self._fail(info.name, info.version, problem)
        self._drop(info)
        raise _Skip

    # -- start-up checks -------------------------------------------------------
    def validate_config(self, config: Mapping[str, Any]) -> None:
        """Validate every channel's declared settings against *config*, once, at start-up.

        :raises PluginError: when a plugin declares an invalid schema.
        :raises server.config.ConfigError: naming ``NUDGE_<KEY>`` for a missing or malformed setting.
        """
        for name in self.channels:
            self.settings[name] = self._channel_settings(name, config)

    def _channel_settings(self, name: str, config: Mapping[str, Any]) -> dict[str, Any]:
        cls = self.channels[name]
        owner = self._owners.get(("channel", name), "?")
        problems = validate_schema(cls.config_schema)
        if problems:
            raise PluginError(f"plugin {owner}: channel {name!r} declares an invalid config_schema: {problems[0]}")
        try:
            settings = validate_settings(cls.config_schema, config)
            cls.check_settings(settings)
        except SettingError as exc:
            raise ConfigError(exc.key, exc.problem, f"a setting of the {name} channel, plugin {owner}") from None
        return settings

    # -- what the rest of Nudge asks -------------------------------------------
    def channel(self, name: str, config: Mapping[str, Any]) -> Channel:
        """Instantiate the channel called *name* with the instance settings plus its validated own settings."""
        if name not in self.channels:
            raise PluginError(f"no plugin provides the channel {name!r}; installed: {', '.join(sorted(self.channels))}")
        settings = self.settings.get(name)
        if settings is None:
            settings = self._channel_settings(name, config)
        return self.channels[name]({**config, **settings})

    def vocabulary_parts(self) -> dict[str, tuple[str, ...]]:
        """The names plugins add to the rules language, for the checker.

        :return: ``{"channels": …, "actions": …, "functions": …, "events": …}``, each a sorted tuple;
            ``events`` holds what channels (``email.bounced``) and triggers declare.
        """
        events = {event for info in self.infos.values() for event in info.events}
        return {
            "channels": tuple(sorted(self.channels)),
            "actions": tuple(sorted(self.actions)),
            "functions": tuple(sorted(self.condition_functions)),
            "events": tuple(sorted(events)),
        }

    def describe(self, app: Any = None) -> list[dict[str, Any]]:
        """Every plugin, loaded or failed, with what it registers (for ``nudge plugins``).

        :param app: when given, the blueprints each plugin registered on it are listed too.
        """
        rows = []
        for info in self.infos.values():
            prefix = getattr(info.module, "__name__", info.name)
            blueprints = sorted(name for name, bp in (app.blueprints.items() if app is not None else ())
                                if bp.import_name == prefix or bp.import_name.startswith(prefix + "."))
            rows.append({"name": info.name, "version": info.version, "source": info.source, "dist": info.dist,
                         "channels": info.channels, "triggers": info.triggers, "actions": info.actions,
                         "conditions": info.conditions, "filters": info.filters, "events": info.events,
                         "blueprints": blueprints, "error": None})
        for failure in self.failures:
            rows.append({"name": failure.name, "version": failure.version, "source": "entry point",
                         "error": failure.error})
        return rows

    def record_status(self, status: DeliveryStatus) -> Any:
        """Record what a provider reported: status history, suppression, and the ``<channel>.<status>`` event.

        Call it inside a request or app context (e.g. from a plugin's callback endpoint).

        :return: the stored :class:`server.models.Event`, or None when no contact matches.
        :raises ValueError: when the channel is unknown or does not declare the event.
        """
        cls = self.channels.get(status.channel)
        if cls is None or status.event not in cls.events:
            raise ValueError(f"no channel declares the event {status.event!r}")
        return _record_status(status, address_field=cls.address_field)


_HHMM = re.compile(r"([01]?\d|2[0-3]):[0-5]\d")


def _local_window(value: Any) -> bool:
    """None, or a pair of ``HH:MM`` local times (a channel's ``quiet_hours``)."""
    return value is None or (isinstance(value, tuple) and len(value) == 2
                             and all(isinstance(t, str) and _HHMM.fullmatch(t) for t in value))


def _items(value: Any) -> list[Any]:
    """A hook's answer as a list: dicts become (name, value) pairs."""
    if isinstance(value, Mapping):
        return list(value.items())
    return list(value)


def _record_status(status: DeliveryStatus, address_field: str | None) -> Any:
    from flask import current_app
    from sqlalchemy import func, select

    from .consent import suppress
    from .db import get_session
    from .engine.ingest import record_event
    from .engine.jobs import process_events
    from .models import Contact, Message, MessageStatusChange
    from .queue import get_queue

    session = get_session()
    message = None
    if status.provider_id:
        message = session.scalar(select(Message).where(Message.channel == status.channel,
                                                       Message.provider_id == status.provider_id))
    if message is None and status.message_key:
        message = session.scalar(select(Message).where(Message.key == status.message_key))
    contact = session.get(Contact, message.contact_id) if message is not None and message.contact_id else None
    if contact is None and status.address and address_field:
        column = getattr(Contact, address_field)
        contact = session.scalar(select(Contact).where(func.lower(column) == status.address.strip().lower()))
    detail = (status.detail or "")[:1024] or None
    if status.suppress and status.address:
        suppress(session, current_app.config["SECRET_KEY"], status.channel, status.address, status.suppress, detail)
    if message is not None:
        session.add(MessageStatusChange(message_id=message.id, status=status.status, detail=detail,
                                        source=status.channel))
    event = None
    if contact is not None:
        props = dict(status.props)
        if message is not None:
            props.setdefault("message", message.key)
            props.setdefault("template", message.template)
        if detail:
            props.setdefault("detail", detail)
        event = record_event(session, contact, status.event, props, occurred_at=status.occurred_at,
                             source=status.channel)
    session.commit()
    if event is not None:
        get_queue().enqueue(process_events, [event.id])
    return event


def build_plugin_manager(config: Mapping[str, Any]) -> PluginManager:
    """Load the plugins named by ``PLUGINS`` (default :data:`DEFAULT_PLUGINS`) and, unless
    ``LOAD_ENTRY_POINTS`` is false, every installed ``nudge.plugins`` entry point."""
    plugins = config.get("PLUGINS")
    if plugins is None:  # unset (the declared default)
        plugins = DEFAULT_PLUGINS
    if isinstance(plugins, str):  # NUDGE_PLUGINS=plugins.email_smtp,plugins.webhook
        plugins = [name.strip() for name in plugins.split(",") if name.strip()]
    pm = PluginManager()
    pm.load(config, default_plugins=tuple(plugins), use_entry_points=bool(config.get("LOAD_ENTRY_POINTS", True)))
    return pm
