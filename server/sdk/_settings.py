"""Plugin settings: the ``config_schema`` declaration and the values read from it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

#: the value types a ``config_schema`` entry may declare
SETTING_TYPES = ("string", "int", "float", "bool", "file")
_SCHEMA_KEYS = {"type", "required", "default", "secret", "help"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingError(ValueError):
    """A plugin setting is missing or malformed.

    :param key: the setting name without the ``NUDGE_`` prefix (``SMTP_CA_FILE``).
    :param problem: what is wrong and, where possible, what to do.
    """

    def __init__(self, key: str, problem: str):
        super().__init__(f"NUDGE_{key}: {problem}")
        self.key = key
        self.problem = problem


def validate_schema(schema: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Check a ``config_schema`` declaration.

    :param schema: ``{KEY: {"type": …, "required": bool, "default": …, "secret": bool, "help": str}}``.
    :return: one line per problem; empty when the schema is valid.
    """
    problems = []
    for key, spec in schema.items():
        if not isinstance(key, str) or not key or key != key.upper() or key.startswith("NUDGE_"):
            problems.append(f"setting name {key!r} must be UPPER_CASE without the NUDGE_ prefix")
            continue
        if not isinstance(spec, Mapping):
            problems.append(f"{key}: the declaration must be a mapping")
            continue
        unknown = set(spec) - _SCHEMA_KEYS
        if unknown:
            problems.append(f"{key}: unknown field {sorted(unknown)[0]!r}; known: {', '.join(sorted(_SCHEMA_KEYS))}")
        kind = spec.get("type", "string")
        if kind not in SETTING_TYPES:
            problems.append(f"{key}: unknown type {kind!r}; use one of {', '.join(SETTING_TYPES)}")
        elif spec.get("default") is not None and kind != "file":
            try:
                _coerce(key, kind, spec["default"])
            except SettingError as exc:
                problems.append(f"{key}: default {spec['default']!r} does not fit the type: {exc.problem}")
    return problems


def _coerce(key: str, kind: str, value: Any) -> Any:
    if kind == "string":
        return str(value)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise SettingError(key, f"must be true or false, got {value!r}")
    if kind in ("int", "float"):
        try:
            return int(value) if kind == "int" else float(value)
        except (TypeError, ValueError):
            raise SettingError(key, f"must be {'an integer' if kind == 'int' else 'a number'}, got {value!r}") from None
    if kind == "file":
        path = os.path.expanduser(str(value))
        if not os.path.isfile(path) or not os.access(path, os.R_OK):
            raise SettingError(key, f"no readable file at {path!r}")
        return path
    raise SettingError(key, f"the plugin declares an unknown type {kind!r}")


def validate_settings(schema: Mapping[str, Mapping[str, Any]], values: Mapping[str, Any]) -> dict[str, Any]:
    """Read the settings a schema declares from *values*, with defaults and types applied.

    :param schema: a channel's ``config_schema``.
    :param values: the instance settings (keys without ``NUDGE_``).
    :return: ``{KEY: value}`` for every declared key (``None`` when unset and optional).
    :raises SettingError: for the first missing required or malformed setting.
    """
    out: dict[str, Any] = {}
    for key, spec in schema.items():
        value = values.get(key)
        if value is None or value == "":
            value = spec.get("default")
        if value is None or value == "":
            if spec.get("required"):
                hint = f" ({spec['help']})" if spec.get("help") else ""
                raise SettingError(key, f"is required but not set{hint}")
            out[key] = None
            continue
        out[key] = _coerce(key, spec.get("type", "string"), value)
    return out
