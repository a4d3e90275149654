"""Request checking against the same JSON Schemas the OpenAPI document publishes.

A small, strict subset of JSON Schema: ``type`` (with ``nullable``), ``properties``,
``required``, ``additionalProperties: false``, ``items``, ``enum``, ``minLength``/``maxLength``,
``minimum``/``maximum``, ``minItems``/``maxItems``, ``min/maxProperties``, ``pattern`` and ``$ref``
into the document's components. What the spec says is what is enforced.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ..contacts.errors import InvalidInput

#: the named schemas of the OpenAPI document (``#/components/schemas/<name>``), filled by ``spec.schema()``
SCHEMAS: dict[str, dict[str, Any]] = {}

_TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}
_ARTICLE = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object",
    "array": "a list",
}


def _name(path: str) -> str:
    return path or "the body"


def validate(
    schema: Mapping[str, Any], value: Any, path: str = "", *, components: Mapping[str, Any] | None = None
) -> Any:
    """Check *value* against *schema*; return it unchanged.

    :param path: the field name used in errors (``contact.email``, ``events[2].props``).
    :raises InvalidInput: naming the first offending field.
    """
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return validate((components or SCHEMAS)[name], value, path, components=components)
    if value is None:
        if schema.get("nullable"):
            return value
        raise InvalidInput(path, f"{_name(path)} must not be null")
    kind = schema.get("type")
    if kind and not _TYPES[kind](value):
        raise InvalidInput(path, f"{_name(path)} must be {_ARTICLE[kind]}")
    if "enum" in schema and value not in schema["enum"]:
        raise InvalidInput(path, f"{_name(path)} must be one of {', '.join(map(str, schema['enum']))}")
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidInput(path, f"{_name(path)} contains a NUL character")
        if len(value) < schema.get("minLength", 0):
            raise InvalidInput(
                path,
                f"{_name(path)} must not be empty"
                if schema["minLength"] == 1
                else f"{_name(path)} must be at least {schema['minLength']} characters",
            )
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise InvalidInput(path, f"{_name(path)} is longer than {schema['maxLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            hint = schema.get("x-pattern-hint") or f"match {schema['pattern']}"
            raise InvalidInput(path, f"{_name(path)} must {hint}")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInput(path, f"{_name(path)} must be a finite number")
        if "minimum" in schema and value < schema["minimum"]:
            raise InvalidInput(path, f"{_name(path)} must be at least {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise InvalidInput(path, f"{_name(path)} must be at most {schema['maximum']}")
    elif isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            raise InvalidInput(path, f"{_name(path)} needs at least {schema['minItems']} item(s)")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise InvalidInput(path, f"{_name(path)} may hold at most {schema['maxItems']} items, got {len(value)}")
        if "items" in schema:
            for i, item in enumerate(value):
                validate(schema["items"], item, f"{path}[{i}]", components=components)
    elif isinstance(value, dict):
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            unknown = sorted(set(value) - set(props))
            if unknown:
                where = f" in {path}" if path else ""
                raise InvalidInput(
                    _join(path, unknown[0]), f"unknown field {unknown[0]!r}{where}; allowed: {', '.join(props)}"
                )
        if len(value) < schema.get("minProperties", 0):
            raise InvalidInput(path, f"{_name(path)} needs at least {schema['minProperties']} key(s)")
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            raise InvalidInput(path, f"{_name(path)} may hold at most {schema['maxProperties']} keys")
        for name in schema.get("required", ()):
            if name not in value:
                raise InvalidInput(_join(path, name), f"{_join(path, name)} is required")
        for name, item in value.items():
            if name in props:
                validate(props[name], item, _join(path, name), components=components)
            elif isinstance(schema.get("additionalProperties"), dict):
                validate(schema["additionalProperties"], item, _join(path, name), components=components)
    return value


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def parse_query(params: list[dict[str, Any]], args: Mapping[str, str]) -> dict[str, Any]:
    """Typed query parameters from *args*; unknown names and bad values raise :class:`InvalidInput`."""
    known = {p["name"]: p for p in params}
    unknown = sorted(set(args) - set(known))
    if unknown:
        raise InvalidInput(unknown[0], f"unknown query parameter {unknown[0]!r}; allowed: {', '.join(known) or 'none'}")
    out: dict[str, Any] = {}
    for name, param in known.items():
        schema = param["schema"]
        if name not in args:
            if "default" in schema:
                out[name] = schema["default"]
            elif param.get("required"):
                raise InvalidInput(name, f"query parameter {name!r} is required")
            continue
        raw = args[name]
        value: Any = raw
        if schema.get("type") == "integer":
            try:
                value = int(raw)
            except ValueError:
                raise InvalidInput(name, f"{name} must be an integer, got {raw[:40]!r}") from None
        elif schema.get("type") == "boolean":
            if raw not in ("true", "false"):
                raise InvalidInput(name, f"{name} must be true or false")
            value = raw == "true"
        out[name] = validate(schema, value, name)
    return out
