"""The plugin manager: built-in plugins from ``DEFAULT_PLUGINS``, third-party ones from entry points.

Each third-party plugin is loaded on its own: one that fails to import, to register
or to answer a ``register_*`` hook is logged once (name, version, error), listed by
``nudge plugins`` and skipped; the others load. Two plugins claiming one name (a
channel, an action …) is a start-up error naming both.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any, NamedTuple

import pluggy

from . import hookspecs
from .config import ConfigError
from .functions import problem as function_problem
from .sdk import (
    Channel,
    ConditionFunction,
    DeliveryStatus,
    SettingError,
    declaration_problems,
    validate_schema,
    validate_settings,
)

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
        self._cache: dict[str, tuple[tuple[str, ...], Any]] = {}

    # -- loading ---------------------------------------------------------------
    def load(
        self,
        config: Mapping[str, Any],
        default_plugins: tuple[Any, ...] = DEFAULT_PLUGINS,
        use_entry_points: bool = True,
    ) -> None:
        """Register the built-in plugins, then every ``nudge.plugins`` entry point, then collect what they provide.

        :param default_plugins: module names (or plugin objects) registered as built-ins: they must load.

        :raises PluginError: when a built-in plugin cannot be imported or two plugins claim one name.
        """
        for entry in default_plugins:
            if isinstance(entry, str):
                try:
                    module = importlib.import_module(entry)
                except ImportError as exc:
                    raise PluginError(
                        f"built-in plugin {entry} cannot be imported: {exc} (check NUDGE_PLUGINS)"
                    ) from exc
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
        return {
            "channel": self.channels,
            "trigger": self.triggers,
            "action": self.actions,
            "condition function": self.condition_functions,
            "template filter": self.template_filters,
        }[kind]

    def _claim(self, kind: str, name: str, info: PluginInfo) -> None:
        if not name:
            raise PluginError(f"plugin {info.name} registers a {kind} without a name")
        owner = self._owners.get((kind, name))
        if owner is not None:
            raise PluginError(
                f"{kind} {name!r} is registered by two plugins: {owner} and {info.name}; "
                "uninstall or disable one of them"
            )
        self._owners[(kind, name)] = info.name

    def _collect(self, info: PluginInfo, config: Mapping[str, Any]) -> None:
        """Ask one plugin what it provides; raises :class:`_Skip` when a third-party plugin fails."""
        found = {
            hook: [item for batch in self._call(info, hook, config=config) for item in _items(batch)]
            for hook in (
                "register_channels",
                "register_triggers",
                "register_actions",
                "register_condition_functions",
                "register_template_filters",
            )
        }
        for cls in found["register_channels"]:
            if not (isinstance(cls, type) and issubclass(cls, Channel)):
                self._bad(info, f"register_channels returned {cls!r}, not a server.sdk.Channel subclass")
            problems = declaration_problems(cls)
            if problems:
                self._bad(info, problems[0])
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
        self.settings.update(self.channel_settings(config))

    def channel_settings(self, config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """Every channel's declared settings validated against *config*, keeping none (a change checked first).

        :raises PluginError: when a plugin declares an invalid schema.
        :raises server.config.ConfigError: naming ``NUDGE_<KEY>`` for a missing or malformed setting.
        """
        return {name: self._channel_settings(name, config) for name in self.channels}

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

    def vocabulary_parts(self) -> dict[str, Any]:
        """The names plugins add to the rules language, for the checker.

        :return: ``{"channels": …, "actions": …, "functions": …, "events": …, "namespaces": …}``, each a sorted
            tuple, and ``"quiet_hours"``: ``{channel: (start, end)}`` of the channels with a default window.
            ``events`` holds what channels (``email.bounced``, the opt-out event) and triggers declare;
            ``namespaces`` the channels whose events they are (``email.opend`` is a typo there, not a new event).
        """
        events = {event for info in self.infos.values() for event in info.events}
        events |= set(self.opt_out_events())
        return {
            "channels": tuple(sorted(self.channels)),
            "actions": tuple(sorted(self.actions)),
            "functions": tuple(sorted(self.condition_functions)),
            "events": tuple(sorted(events)),
            "namespaces": tuple(sorted(self.event_namespaces())),
            "quiet_hours": {
                name: tuple(cls.quiet_hours) for name, cls in sorted(self.channels.items()) if cls.quiet_hours
            },
        }

    def opt_out_events(self) -> Mapping[str, str]:
        """The event of each channel that means an opt-out (``sms.opted_out``) → the channel: arriving from
        anywhere, it revokes the contact's consent there. Only channels addressing contacts have one."""
        return self._derived(
            "opt_out_events",
            lambda: MappingProxyType(
                {
                    cls.opt_out_event_name(): name
                    for name, cls in sorted(self.channels.items())
                    if cls.address_field is not None and cls.consent is not None
                }
            ),
        )

    def opt_out_event(self, channel: str) -> str:
        """The event an opt-out on *channel* raises: its declared one, else ``<channel>.unsubscribed``."""
        cls = self.channels.get(channel)
        return cls.opt_out_event_name() if cls is not None else f"{channel}.unsubscribed"

    def activity_events(self) -> frozenset[str]:
        """The channels' events that are the recipient acting (an open, a reply): they move ``last_seen``."""
        return self._derived(
            "activity_events",
            lambda: frozenset(event for cls in self.channels.values() for event in cls.activity_events),
        )

    def event_namespaces(self) -> frozenset[str]:
        """The channels whose events are theirs alone (``email.…``): those declaring events or an opt-out."""
        return self._derived(
            "event_namespaces",
            lambda: frozenset(
                name for name, cls in self.channels.items() if cls.events or cls.address_field is not None
            ),
        )

    def _derived(self, key: str, compute: Callable[[], Any]) -> Any:
        """*compute()* once per set of channels (they are fixed once the plugins are loaded)."""
        stamp = tuple(self.channels)
        cached = self._cache.get(key)
        if cached is None or cached[0] != stamp:
            cached = self._cache[key] = (stamp, compute())
        return cached[1]

    def channel_for_field(self, field: str) -> str | None:
        """The first installed channel (by name) addressing contacts by *field* (``email``), or None."""
        return next((name for name, cls in sorted(self.channels.items()) if cls.address_field == field), None)

    def describe(self, app: Any = None) -> list[dict[str, Any]]:
        """Every plugin, loaded or failed, with what it registers (for ``nudge plugins``).

        :param app: when given, the blueprints each plugin registered on it are listed too.
        """
        rows = []
        for info in self.infos.values():
            prefix = getattr(info.module, "__name__", info.name)
            blueprints = sorted(
                name
                for name, bp in (app.blueprints.items() if app is not None else ())
                if bp.import_name == prefix or bp.import_name.startswith(prefix + ".")
            )
            rows.append(
                {
                    "name": info.name,
                    "version": info.version,
                    "source": info.source,
                    "dist": info.dist,
                    "channels": info.channels,
                    "triggers": info.triggers,
                    "actions": info.actions,
                    "conditions": info.conditions,
                    "filters": info.filters,
                    "events": info.events,
                    "blueprints": blueprints,
                    "error": None,
                }
            )
        for failure in self.failures:
            rows.append(
                {"name": failure.name, "version": failure.version, "source": "entry point", "error": failure.error}
            )
        return rows

    def record_status(self, status: DeliveryStatus) -> Any:
        """Record what a provider reported; kept for plugins written before :func:`server.sdk.record_status`,
        which it is (call it inside a request or app context)."""
        from .sdk import record_status

        return record_status(status)


def _items(value: Any) -> list[Any]:
    """A hook's answer as a list: dicts become (name, value) pairs."""
    if isinstance(value, Mapping):
        return list(value.items())
    return list(value)


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
