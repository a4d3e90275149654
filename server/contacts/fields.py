"""Typed custom fields: definitions in ``custom_fields``, values in ``Contact.fields`` as plain JSON.

Stored forms, chosen so JSON comparisons in SQL agree with Python: strings, numbers
and booleans as themselves, dates as ``2026-05-01``, date-times as ``2026-05-01T12:00:00Z``
and lists as lists of strings.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import FieldDefinition, FieldType
from .errors import Conflict, InvalidInput
from .normalize import check_text, iso, parse_date, parse_datetime

#: matched whole (``fullmatch``: ``$`` alone lets a trailing newline through); the anchors stay for the API, whose
#: JSON schema publishes this pattern (``server.api.fields``), and JSON Schema patterns are searched, not matched
FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
#: names of the contact's own columns: a custom field cannot shadow them
STANDARD_FIELDS = ("external_id", "email", "phone", "first_name", "last_name", "timezone", "locale", "stage", "score")
RESERVED = frozenset(STANDARD_FIELDS) | {"id", "tags", "fields", "created_at", "updated_at", "last_seen"}
MAX_STRING = 4096
MAX_LIST = 100


def written_values(
    current: Callable[[str], Any], fields: Mapping[str, Any] | None, cleaned: Mapping[str, Any]
) -> tuple[set[str], dict[str, Any]]:
    """What writing *cleaned* onto a contact gives it, and the names of the values that differ from its own.

    :param current: the contact's value of a standard attribute by name (an ORM object's or a stored row's)
    :param fields: the contact's custom fields as stored
    :return: the names that differ (what a ``contact.updated`` event names: writing the values a contact already
        has changes nothing), and the values to write: the standard attributes *cleaned* gives (a score of None is
        0) and, when it gives custom fields, all of them merged into the stored ones (None removes one)
    """
    values = {key: cleaned[key] for key in STANDARD_FIELDS if key in cleaned}
    if "score" in values:
        values["score"] = values["score"] or 0
    names = {key for key, value in values.items() if current(key) != value}
    if "fields" in cleaned:
        stored = fields or {}
        merged = dict(stored)
        for name, value in (cleaned["fields"] or {}).items():
            if stored.get(name) != value:
                names.add(name)
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = value
        values["fields"] = merged
    return names, values


def definitions(session: Session) -> dict[str, str]:
    """Every custom field, name → type."""
    return dict(session.execute(select(FieldDefinition.name, FieldDefinition.type)).all())


def define_field(session: Session, name: Any, type_: Any, label: Any = "") -> FieldDefinition:
    """Create a custom field definition.

    :raises InvalidInput: for a bad name or type; :class:`Conflict` when the name is taken.
    """
    if not isinstance(name, str) or not FIELD_NAME.fullmatch(name):
        raise InvalidInput("name", "name must be lowercase letters, digits and _ (starting with a letter, at most 64)")
    if name in RESERVED:
        raise InvalidInput("name", f"{name!r} is a built-in contact attribute; pick another name")
    kinds = [t.value for t in FieldType]
    if type_ not in kinds:
        raise InvalidInput("type", f"type must be one of {', '.join(kinds)}")
    label = check_text(label or "", "label", 255, allow_empty=True)
    if session.scalar(select(FieldDefinition.id).where(FieldDefinition.name == name)) is not None:
        raise Conflict("name", f"a custom field named {name!r} already exists")
    row = FieldDefinition(name=name, type=type_, label=label)
    session.add(row)
    session.flush()
    return row


def stored_moment(kind: str | None, value: Any) -> Any:
    """The stored text of a date or date-time *value* a rule computes, for a field of type *kind*: the form the
    API's and the imports' values take, which segment SQL reads — a date field keeps the day (UTC, as ``today``),
    a date-time field the instant to the second (``2026-05-01T12:00:00Z``). Any other value is returned as is."""
    if isinstance(value, datetime):
        value = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return value.astimezone(UTC).date().isoformat() if kind == FieldType.DATE.value else iso(value)
    if isinstance(value, date):
        if kind == FieldType.DATETIME.value:
            return iso(datetime(value.year, value.month, value.day, tzinfo=UTC))
        return value.isoformat()
    return value


def coerce_value(kind: str, value: Any, field: str, *, from_text: bool = False) -> Any:
    """The stored form of *value* for a field of type *kind*; ``None`` clears the field.

    :param from_text: the value comes from a CSV cell, so ``"42"`` is a number and ``"yes"`` a bool.
    """
    if value is None:
        return None
    if kind == FieldType.STRING.value:
        if from_text or isinstance(value, str):
            return check_text(str(value), field, MAX_STRING, allow_empty=True)
        raise InvalidInput(field, f"{field} must be a string")
    if kind == FieldType.NUMBER.value:
        if from_text and isinstance(value, str):
            try:
                value = float(value) if any(c in value for c in ".eE") else int(value)
            except ValueError:
                raise InvalidInput(field, f"{field} {value!r} is not a number") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidInput(field, f"{field} must be a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInput(field, f"{field} must be a finite number")
        if isinstance(value, int) and not -(2**53) <= value <= 2**53:
            raise InvalidInput(field, f"{field} is too large (at most 2^53)")
        return value
    if kind == FieldType.BOOL.value:
        if from_text and isinstance(value, str):
            text = value.strip().lower()
            if text in ("true", "yes", "1", "y"):
                return True
            if text in ("false", "no", "0", "n"):
                return False
            raise InvalidInput(field, f"{field} {value!r} is not true or false")
        if not isinstance(value, bool):
            raise InvalidInput(field, f"{field} must be true or false")
        return value
    if kind == FieldType.DATE.value:
        return parse_date(value, field).isoformat()
    if kind == FieldType.DATETIME.value:
        return iso(parse_datetime(value, field))
    if kind == FieldType.LIST.value:
        if from_text and isinstance(value, str):
            value = [part.strip() for part in value.split(";") if part.strip()]
        if not isinstance(value, list) or len(value) > MAX_LIST:
            raise InvalidInput(field, f"{field} must be a list of at most {MAX_LIST} strings")
        return [check_text(item, f"{field}[{i}]", 255) for i, item in enumerate(value)]
    raise InvalidInput(field, f"{field} has an unknown type {kind!r}")


def coerce_fields(
    values: Any, known: Mapping[str, str], prefix: str = "fields", *, from_text: bool = False
) -> dict[str, Any]:
    """Check custom field values against their definitions; an undefined name is an error."""
    if not isinstance(values, Mapping):
        raise InvalidInput(prefix, f"{prefix} must be an object of custom field values")
    out: dict[str, Any] = {}
    for name, value in values.items():
        field = f"{prefix}.{name}"
        if name not in known:
            raise InvalidInput(field, f"unknown custom field {name!r}; define it first (POST /api/v1/fields)")
        out[name] = coerce_value(known[name], value, field, from_text=from_text)
    return out
