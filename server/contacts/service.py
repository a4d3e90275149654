"""Creating, finding and updating contacts: one validation path for the API, forms, events and import."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import AuditEntry, Contact, ContactTag
from .errors import Conflict, InvalidInput
from .fields import STANDARD_FIELDS, coerce_fields, definitions, written_values
from .normalize import check_locale, check_text, check_timezone, iso, normalize_email, normalize_phone

CONTACT_KEYS = STANDARD_FIELDS + ("fields", "tags")
MAX_TAGS = 100
MAX_SCORE = 2**31 - 1


def _clean_tags(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_TAGS:
        raise InvalidInput(field, f"{field} must be a list of at most {MAX_TAGS} strings")
    out: list[str] = []
    for i, item in enumerate(value):
        tag = check_text(item, f"{field}[{i}]", 128).strip()
        if tag not in out:
            out.append(tag)
    return out


def clean_tag(value: Any, field: str = "tag") -> str:
    return check_text(value, field, 128).strip()


def clean_contact(
    session: Session,
    data: Any,
    *,
    prefix: str = "",
    region: str | None = None,
    known_fields: Mapping[str, str] | None = None,
    from_text: bool = False,
) -> dict[str, Any]:
    """Validate and normalise contact attributes; only the keys given come back.

    ``None`` clears an attribute. Unknown keys and undefined custom fields are errors.

    :param prefix: how the caller names the object in error fields, e.g. ``"contact."``.
    :param region: the country assumed for phone numbers written without ``+``.
    :param known_fields: custom field definitions (read from the database when not given).
    :param from_text: values are CSV cells (numbers and booleans as text).
    :raises InvalidInput: naming the first offending field.
    """
    where = prefix.rstrip(".") or "contact"
    if not isinstance(data, Mapping):
        raise InvalidInput(where, f"{where} must be an object")
    unknown = sorted(set(data) - set(CONTACT_KEYS))
    if unknown:
        raise InvalidInput(
            f"{prefix}{unknown[0]}",
            f"unknown field {unknown[0]!r} in {where}; allowed: "
            f'{", ".join(CONTACT_KEYS)} (custom fields go inside "fields")',
        )
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == "fields" and known_fields is None and value is not None and not (from_text and value == ""):
            known_fields = definitions(session)
        out[key] = clean_value(
            key, value, f"{prefix}{key}", region=region, known_fields=known_fields, from_text=from_text
        )
    return out


def clean_value(
    key: str,
    value: Any,
    field: str,
    *,
    region: str | None = None,
    known_fields: Mapping[str, str] | None = None,
    from_text: bool = False,
) -> Any:
    """One contact attribute (*key*, one of ``CONTACT_KEYS``) validated and normalised, as :func:`clean_contact`
    does it for each key: the value depends on nothing else, so a caller may cache it.

    :param field: the name errors give it.
    :raises InvalidInput: naming *field*.
    """
    if value is None or (from_text and value == ""):
        if key == "score":
            raise InvalidInput(field, f"{field} must be an integer")
        return None if key != "tags" else []
    if key == "email":
        return normalize_email(value, field)
    if key == "phone":
        return normalize_phone(value, region, field)
    if key == "external_id":
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        return check_text(value, field, 255).strip()
    if key in ("first_name", "last_name"):
        return check_text(value, field, 255, allow_empty=True, one_line=True).strip()
    if key == "stage":
        return check_text(value, field, 64).strip()
    if key == "timezone":
        return check_timezone(value, field)
    if key == "locale":
        return check_locale(value, field)
    if key == "score":
        if from_text and isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                raise InvalidInput(field, f"{field} {value!r} is not an integer") from None
        if isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_SCORE:
            raise InvalidInput(field, f"{field} must be an integer between -{MAX_SCORE} and {MAX_SCORE}")
        return value
    if key == "tags":
        if from_text and isinstance(value, str):
            value = [t for t in (part.strip() for part in value.split(";")) if t]
        return _clean_tags(value, field)
    if key == "fields":
        return coerce_fields(value, known_fields or {}, field, from_text=from_text)
    raise InvalidInput(field, f"unknown field {key!r}")


def nest_fields(flat: Mapping[str, Any], custom: Any) -> dict[str, Any]:
    """Flat name → value pairs (a CSV row, a form post) as contact input: names in *custom* go
    under ``fields``, the rest stay contact attributes."""
    data = {k: v for k, v in flat.items() if k not in custom}
    fields = {k: v for k, v in flat.items() if k in custom}
    if fields:
        data["fields"] = fields
    return data


def find_contact(session: Session, *, email: str | None = None, external_id: str | None = None) -> Contact | None:
    """The contact with this external id, else with this email."""
    if external_id:
        contact = session.scalar(select(Contact).where(Contact.external_id == external_id))
        if contact is not None:
            return contact
    if email:
        return session.scalar(select(Contact).where(Contact.email == email))
    return None


def other_user(contact: Contact, external_id: str | None) -> bool:
    """Whether *contact* is a user (it has an external id) other than *external_id*'s, when that names one."""
    return bool(external_id) and contact.external_id is not None and contact.external_id != external_id


def check_same_user(contact: Contact, cleaned: Mapping[str, Any], prefix: str = "") -> None:
    """Refuse to write *cleaned* (found by its email) onto *contact* when both name a user, and not the same one.

    :func:`find_contact` falls back on the email when the external id is new: the contact it finds then is the
    user it was found for only when it has no external id of its own (an imported address). Taking it would repoint
    another user's contact at the new id, so anyone with an ingest key could take over a person's record.

    :raises Conflict: naming ``<prefix>email``.
    """
    if other_user(contact, cleaned.get("external_id")):
        field = f"{prefix}email"
        raise Conflict(
            field,
            f"{field} already belongs to contact {contact.id}, which has another external_id; a user's email "
            "moves to another user only by changing or merging that contact first "
            f"(PATCH /api/v1/contacts/{contact.id}, POST /api/v1/contacts/{{id}}/merge)",
        )


def _check_unique(session: Session, contact: Contact | None, cleaned: Mapping[str, Any], prefix: str) -> None:
    for key in ("email", "external_id"):
        value = cleaned.get(key)
        if not value or (contact is not None and getattr(contact, key) == value):
            continue
        owner = session.scalar(select(Contact.id).where(getattr(Contact, key) == value))
        if owner is not None and (contact is None or owner != contact.id):
            raise taken(f"{prefix}{key}", owner)


def taken(field: str, owner: int) -> Conflict:
    """The error for an email or external id (*field*) that already belongs to contact *owner*."""
    return Conflict(
        field,
        f"{field} already belongs to contact {owner}; "
        f"merge the two contacts first (POST /api/v1/contacts/{owner}/merge)",
    )


def changed_values(contact: Contact, cleaned: Mapping[str, Any]) -> set[str]:
    """The names of the attributes and custom fields *cleaned* gives *contact* a value other than its own (what
    a ``contact.updated`` event names: a write of the values a contact already has changes nothing)."""
    return written_values(functools.partial(getattr, contact), contact.fields, cleaned)[0]


def apply_changes(
    session: Session,
    contact: Contact,
    cleaned: Mapping[str, Any],
    *,
    prefix: str = "",
    replace_tags: bool = False,
    changed: set[str] | None = None,
) -> Contact:
    """Write cleaned attributes onto *contact*: custom fields merge (``None`` removes one); tags
    are added, or replace the old ones when *replace_tags*. The names of the values that differed are added to
    *changed* when given (:func:`changed_values`)."""
    _check_unique(session, contact, cleaned, prefix)
    names, values = written_values(functools.partial(getattr, contact), contact.fields, cleaned)
    if changed is not None:
        changed |= names
    for key, value in values.items():
        setattr(contact, key, value)
    if "tags" in cleaned:
        set_tags(session, contact, cleaned["tags"], replace=replace_tags)
    return contact


def set_tags(session: Session, contact: Contact, tags: list[str], *, replace: bool = False) -> None:
    current = {t.tag for t in contact.tags}
    if replace:
        for row in list(contact.tags):
            if row.tag not in tags:
                contact.tags.remove(row)
    for tag in tags:
        if tag not in current:
            contact.tags.append(ContactTag(tag=tag))
            current.add(tag)


def create_contact(session: Session, cleaned: Mapping[str, Any], *, prefix: str = "") -> Contact:
    """A new contact from cleaned attributes (needs an email or external id).

    :raises Conflict: when the email or external id is taken.
    """
    if not cleaned.get("email") and not cleaned.get("external_id"):
        raise InvalidInput(prefix.rstrip(".") or "email", "a contact needs an email or an external_id")
    contact = Contact(fields={}, score=0)
    apply_changes(session, contact, cleaned, prefix=prefix)
    session.add(contact)
    session.flush()
    return contact


def upsert_contact(
    session: Session, cleaned: Mapping[str, Any], *, prefix: str = "", changed: set[str] | None = None
) -> tuple[Contact, bool]:
    """Find the contact by external id or email and update it (the names of the values that differed added to
    *changed* when given), or create it.

    :return: the contact and whether it was created.
    :raises InvalidInput: without an email or external id; :class:`Conflict` when they name two contacts, or
        when the email is another user's (:func:`check_same_user`).
    """
    email, external_id = cleaned.get("email"), cleaned.get("external_id")
    if not email and not external_id:
        raise InvalidInput(prefix.rstrip(".") or "contact", "a contact needs an email or an external_id")
    contact = find_contact(session, email=email, external_id=external_id)
    if contact is None:
        return create_contact(session, cleaned, prefix=prefix), True
    check_same_user(contact, cleaned, prefix)
    apply_changes(session, contact, cleaned, prefix=prefix, changed=changed)
    session.flush()
    return contact, False


def contact_dict(contact: Contact) -> dict[str, Any]:
    """The API form of a contact."""
    return {
        "id": contact.id,
        "external_id": contact.external_id,
        "email": contact.email,
        "phone": contact.phone,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "timezone": contact.timezone,
        "locale": contact.locale,
        "stage": contact.stage,
        "score": contact.score,
        "fields": dict(contact.fields or {}),
        "tags": sorted(t.tag for t in contact.tags),
        "created_at": iso(contact.created_at),
        "updated_at": iso(contact.updated_at),
        "last_seen": iso(contact.last_seen),
    }


def audit(
    session: Session, actor: str, action: str, target_type: str, target_id: Any = None, **detail: Any
) -> AuditEntry:
    """Record an admin action. Keep personal data out of *detail*: ids and counts only."""
    entry = audit_unflushed(session, actor, action, target_type, target_id, **detail)
    session.flush()
    return entry


def audit_unflushed(
    session: Session, actor: str, action: str, target_type: str, target_id: Any = None, **detail: Any
) -> AuditEntry:
    """:func:`audit` without the flush: a caller recording many flushes them in one statement (the entries have no
    id until then)."""
    entry = AuditEntry(
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        detail=detail,
    )
    session.add(entry)
    return entry
