"""The plugin manager: built-in plugins from ``DEFAULT_PLUGINS``, third-party ones from entry points."""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any, Mapping

import pluggy

from . import hookspecs
from .sdk import Channel

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


@dataclass
class PluginInfo:
    name: str
    version: str
    module: Any
    channels: list[str] = field(default_factory=list)


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus Nudge's registry of what each plugin provides."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self.failures: list[tuple[str, str, str]] = []  # (name, version, error)
        self.channels: dict[str, type[Channel]] = {}

    def load(self, config: Mapping[str, Any], default_plugins: tuple[str, ...] = DEFAULT_PLUGINS,
             use_entry_points: bool = True) -> None:
        for modname in default_plugins:
            module = importlib.import_module(modname)
            self._add(modname, _version_of(module, "builtin"), module)
        if use_entry_points:
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                version = ep.dist.version if ep.dist is not None else "unknown"
                try:
                    module = ep.load()
                except Exception as exc:  # a broken plugin must not take Nudge down
                    msg = f"{type(exc).__name__}: {exc}"
                    log.error("plugin %s %s failed to load and was skipped: %s", ep.name, version, msg)
                    self.failures.append((ep.name, version, msg))
                    continue
                self._add(ep.name, version, module)
        self._collect_channels(MappingProxyType(dict(config)))

    def _add(self, name: str, version: str, module: Any) -> None:
        if self.is_registered(module) or name in self.infos:
            return
        self.register(module, name=name)
        self.infos[name] = PluginInfo(name=name, version=version, module=module)

    def _collect_channels(self, config: Mapping[str, Any]) -> None:
        owners: dict[str, str] = {}
        for impl in self.hook.register_channels.get_hookimpls():
            classes = impl.function(config=config) or []
            for cls in classes:
                if not cls.name:
                    raise PluginError(f"plugin {impl.plugin_name} registers a channel class {cls.__name__} without a name")
                if cls.name in owners:
                    raise PluginError(
                        f"channel {cls.name!r} is registered by two plugins: {owners[cls.name]} and {impl.plugin_name}; "
                        "uninstall or disable one of them"
                    )
                owners[cls.name] = impl.plugin_name
                self.channels[cls.name] = cls
                self.infos[impl.plugin_name].channels.append(cls.name)

    def channel(self, name: str, config: Mapping[str, Any]) -> Channel:
        """Instantiate the channel called *name*."""
        try:
            cls = self.channels[name]
        except KeyError:
            raise PluginError(f"no plugin provides the channel {name!r}; installed: {', '.join(sorted(self.channels))}") from None
        return cls(config)


def _version_of(module: Any, default: str) -> str:
    return str(getattr(module, "__version__", default))


def build_plugin_manager(config: Mapping[str, Any]) -> PluginManager:
    pm = PluginManager()
    pm.load(config, default_plugins=tuple(config.get("PLUGINS", DEFAULT_PLUGINS)),
            use_entry_points=bool(config.get("LOAD_ENTRY_POINTS", True)))
    return pm
