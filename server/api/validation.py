"""Request checking against the same JSON Schemas the OpenAPI document publishes.

A small, strict subset of JSON Schema: ``type`` (with ``nullable``), ``properties``,
``required``, ``additionalProperties: false``, ``items``, ``enum``, ``minLength``/``maxLength``,
``minimum``/``maximum``, ``minItems``/``maxItems``, ``min/maxProperties``, ``pattern`` and ``$ref``
into the document's components. What the spec says is what is enforced.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
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
        if "pattern" in schema and not regex(schema["pattern"]).search(value):
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


Check = Callable[[Any], bool]


def validator(schema: Mapping[str, Any], *, components: Mapping[str, Any] | None = None) -> Callable[[Any], Any]:
    """:func:`validate` for *schema*, compiled once: a valid value passes a predicate generated from the schema
    (straight-line Python, no paths or messages built on the way); an invalid one goes through :func:`validate`,
    which names the error. The predicate is generated on first use, when every ``$ref`` target is registered.
    """
    compiled: list[Check] = []

    def run(value: Any) -> Any:
        if not compiled:
            compiled.append(_Generator(components).function(schema))
        return value if compiled[0](value) else validate(schema, value, components=components)

    return run


_TYPE_TESTS = {
    "string": "isinstance({v}, str)",
    "integer": "(isinstance({v}, int) and not isinstance({v}, bool))",
    "number": "(isinstance({v}, (int, float)) and not isinstance({v}, bool))",
    "boolean": "isinstance({v}, bool)",
    "object": "isinstance({v}, dict)",
    "array": "isinstance({v}, list)",
}


class _Generator:
    """Generates ``def check(v0) -> bool``: true exactly when :func:`validate` accepts the value (the same rules in
    the same cases); each named schema (``$ref``) becomes a function of its own, so references may recurse."""

    def __init__(self, components: Mapping[str, Any] | None):
        self.components = components if components is not None else SCHEMAS
        self.names: dict[str, Any] = {"isinstance": isinstance, "len": len, "math": math, "_MISSING": object()}
        self.functions: list[str] = []
        self.refs: dict[str, str] = {}
        self.counter = 0

    def function(self, schema: Mapping[str, Any]) -> Check:
        entry = self._define(schema)
        exec("\n\n".join(self.functions), self.names)
        return self.names[entry]

    def _fresh(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    def _constant(self, value: Any) -> str:
        name = self._fresh("c")
        self.names[name] = value
        return name

    def _define(self, schema: Mapping[str, Any]) -> str:
        name = self._fresh("check")
        body = self._node(schema, "v0", 1)
        self.functions.append("\n".join([f"def {name}(v0):", *body, "    return True"]))
        return name

    def _node(self, schema: Mapping[str, Any], v: str, depth: int) -> list[str]:
        pad = "    " * depth
        if "$ref" in schema:
            ref = schema["$ref"].rsplit("/", 1)[-1]
            if ref not in self.refs:
                self.refs[ref] = self._fresh("ref")  # reserved before the body: a recursive schema calls itself
                target = self.components[ref]
                body = self._node(target, "v0", 1)
                self.functions.append("\n".join([f"def {self.refs[ref]}(v0):", *body, "    return True"]))
            return [f"{pad}if not {self.refs[ref]}({v}):", f"{pad}    return False"]
        kind = schema.get("type")
        if kind is None:  # any type (rare): validate itself decides
            check = self._constant(_predicate(schema, self.components))
            return [f"{pad}if not {check}({v}):", f"{pad}    return False"]
        if schema.get("nullable"):
            inner = self._typed(schema, kind, v, depth + 1)
            return [f"{pad}if {v} is not None:", *inner] if inner else []
        return self._typed(schema, kind, v, depth)

    def _typed(self, schema: Mapping[str, Any], kind: str, v: str, depth: int) -> list[str]:
        pad = "    " * depth
        fail = f"{pad}    return False"
        lines = [f"{pad}if not {_TYPE_TESTS[kind].format(v=v)}:", fail]
        if "enum" in schema:
            lines += [f"{pad}if {v} not in {self._constant(list(schema['enum']))}:", fail]
        if kind == "string":
            tests = [f"'\\x00' in {v}"]
            if schema.get("minLength", 0):
                tests.append(f"len({v}) < {int(schema['minLength'])}")
            if "maxLength" in schema:
                tests.append(f"len({v}) > {int(schema['maxLength'])}")
            if "pattern" in schema:
                tests.append(f"{self._constant(regex(schema['pattern']))}.search({v}) is None")
            lines += [f"{pad}if {' or '.join(tests)}:", fail]
        elif kind in ("integer", "number"):
            tests = [f"(isinstance({v}, float) and not math.isfinite({v}))"]
            if "minimum" in schema:
                tests.append(f"{v} < {self._constant(schema['minimum'])}")
            if "maximum" in schema:
                tests.append(f"{v} > {self._constant(schema['maximum'])}")
            lines += [f"{pad}if {' or '.join(tests)}:", fail]
        elif kind == "array":
            if schema.get("minItems", 0):
                lines += [f"{pad}if len({v}) < {int(schema['minItems'])}:", fail]
            if "maxItems" in schema:
                lines += [f"{pad}if len({v}) > {int(schema['maxItems'])}:", fail]
            if "items" in schema:
                item = self._fresh("v")
                lines += [f"{pad}for {item} in {v}:", *self._node(schema["items"], item, depth + 1)]
        elif kind == "object":
            lines += self._object(schema, v, depth)
        return lines

    def _object(self, schema: Mapping[str, Any], v: str, depth: int) -> list[str]:
        pad = "    " * depth
        fail = f"{pad}    return False"
        props = schema.get("properties", {})
        additional = schema.get("additionalProperties")
        lines: list[str] = []
        if additional is False:
            lines += [f"{pad}if not {self._constant(frozenset(props))}.issuperset({v}):", fail]
        if schema.get("minProperties", 0):
            lines += [f"{pad}if len({v}) < {int(schema['minProperties'])}:", fail]
        if "maxProperties" in schema:
            lines += [f"{pad}if len({v}) > {int(schema['maxProperties'])}:", fail]
        for name in schema.get("required", ()):
            lines += [f"{pad}if {name!r} not in {v}:", fail]
        for name, sub in props.items():
            item = self._fresh("v")
            body = self._node(sub, item, depth + 1)
            if body:
                lines += [f"{pad}{item} = {v}.get({name!r}, _MISSING)", f"{pad}if {item} is not _MISSING:", *body]
        if isinstance(additional, dict):
            key, item = self._fresh("k"), self._fresh("v")
            known = self._constant(frozenset(props))
            lines += [
                f"{pad}for {key}, {item} in {v}.items():",
                f"{pad}    if {key} not in {known}:",
                *self._node(additional, item, depth + 2),
            ]
        return lines


def _predicate(schema: Mapping[str, Any], components: Mapping[str, Any]) -> Check:
    """The predicate of a schema without ``type`` (rare): :func:`validate` itself, as a yes/no."""

    def check(value: Any) -> bool:
        try:
            validate(schema, value, components=components)
        except InvalidInput:
            return False
        return True

    return check


@functools.cache
def regex(pattern: str) -> re.Pattern[str]:
    """A schema's ``pattern`` as JSON Schema reads it: ``$`` ends the text (in Python's ``re`` it also matches before
    a final line break, so ``"vips\\n"`` would pass ``^[a-z]+$``)."""
    return re.compile(re.sub(r"(?<!\\)\$", r"\\Z", pattern))


#: an integer in a query string: ASCII digits only (``int()`` also takes " 5", "1_0" and other scripts' digits)
_INTEGER = re.compile(r"-?[0-9]+")
#: the integers a query parameter may hold at all (a database's BIGINT)
_INT64 = 2**63 - 1


def _query_integer(name: str, raw: str) -> int:
    """*raw* as an integer query parameter, or :class:`InvalidInput` naming it; one of more digits than any bound
    stands for a number just past :data:`_INT64` (``int()`` refuses 4,300 digits, and needs none of them)."""
    if not _INTEGER.fullmatch(raw):
        raise InvalidInput(name, f"{name} must be an integer (digits 0-9), got {raw[:40]!r}")
    digits = raw.lstrip("-").lstrip("0")
    if len(digits) > 19:
        return -(_INT64 + 1) if raw.startswith("-") else _INT64 + 1
    return int(raw)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def parse_query(params: list[dict[str, Any]], args: Mapping[str, str]) -> dict[str, Any]:
    """Typed query parameters from *args*; unknown names and bad values raise :class:`InvalidInput`."""
    known = {p["name"]: p for p in params}
    unknown = sorted(set(args) - set(known))
    if unknown:
        raise InvalidInput(unknown[0], f"unknown query parameter {unknown[0]!r}; allowed: {', '.join(known) or 'none'}")
    getlist = getattr(args, "getlist", None)  # a MultiDict: a name given twice would silently take the first
    for name in sorted(args):
        count = len(getlist(name)) if getlist is not None else 1
        if count > 1:
            raise InvalidInput(name, f"query parameter {name!r} is given {count} times; give it once")
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
            value = _query_integer(name, raw)
            if not -_INT64 <= validate(schema, value, name) <= _INT64:
                raise InvalidInput(name, f"{name} must be between {-_INT64} and {_INT64}")
        elif schema.get("type") == "boolean":
            if raw not in ("true", "false"):
                raise InvalidInput(name, f"{name} must be true or false")
            value = raw == "true"
        out[name] = validate(schema, value, name)
    return out
