"""Segment messages (track, identify, page, screen, group, alias) into Nudge's contacts and events.

One request's messages are checked first (:func:`check_message`), then stored in order in one transaction
(:func:`store_messages`): the events of known users go set-wise through the events API's path
(:func:`server.engine.ingest.store_events`), visitors and identities one by one. Each ``messageId`` is remembered
for 24 hours with the idempotency records of the API, so a retried batch stores nothing twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from ...contacts import (
    InvalidInput,
    announce_changes,
    apply_changes,
    clean_contact,
    create_contact,
    definitions,
    find_contact,
    merge_contacts,
    record_event,
)
from ...contacts.normalize import check_json, check_text, parse_datetime
from ...contacts.service import check_same_user, other_user
from ...engine.ingest import prepare_events, store_events
from ...engine.once import KEEP
from ...models import AnonymousId, Contact, IdempotencyRecord, utcnow
from ...segment_names import event_name

KINDS = ("track", "identify", "page", "screen", "group", "alias")
#: the event each kind but track and alias records (identify records contact.created / contact.updated)
EVENT_OF = {"page": "page.visited", "screen": "screen.viewed", "group": "group.joined"}
#: idempotency records of messages: one namespace for every /v1/ endpoint, apart from Idempotency-Key's
ENDPOINT = "segment"
MAX_ID = 255
#: the whole numbers taken as an id's text: those every client sends exactly (64-bit)
_INT_MIN, _INT_END = -(2**63), 2**63


class Message(NamedTuple):
    """A checked message: where errors name it (``batch[3].``), its kind, identities, time and body."""

    prefix: str
    kind: str
    user_id: str | None
    anonymous_id: str | None
    message_id: str | None
    occurred_at: datetime | None
    body: Mapping[str, Any]


def _ident(value: Any, field: str) -> str | None:
    """A user or anonymous id: a string of 1 to 255 characters, or a whole number within 64 bits taken as its
    decimal text (``42`` → ``"42"``; ``1e300`` or ``1.5`` would be ``"1e+300"`` or a rounded text)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InvalidInput(field, f"{field} must be a string")
    if isinstance(value, float) or (isinstance(value, int) and not _INT_MIN <= value < _INT_END):
        raise InvalidInput(
            field, f"{field} must be a string, or a whole number within 64 bits (no fraction or exponent)"
        )
    return check_text(str(value), field, MAX_ID, one_line=True)


def _object(body: Mapping[str, Any], name: str, prefix: str) -> dict[str, Any]:
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{prefix}{name}", f"{prefix}{name} must be an object")
    return value


def check_message(body: Any, prefix: str, kind: str | None = None) -> Message:
    """Check one message's shape; *kind* is the endpoint's (``/v1/track``), else the message's ``type``.

    :raises InvalidInput: naming the field (``batch[3].userId``).
    """
    where = prefix.rstrip(".") or "the body"
    if not isinstance(body, dict):
        raise InvalidInput(where, f"{where} must be a JSON object (a message)")
    given = body.get("type")
    kind = kind or (given.lower() if isinstance(given, str) else None)
    if kind not in KINDS:
        raise InvalidInput(f"{prefix}type", f"{prefix}type must be one of {', '.join(KINDS)}, got {given!r}")
    user_id = _ident(body.get("userId"), f"{prefix}userId")
    anonymous_id = _ident(body.get("anonymousId"), f"{prefix}anonymousId")
    message_id = _ident(body.get("messageId"), f"{prefix}messageId")
    at = body.get("timestamp")
    occurred_at = parse_datetime(at, f"{prefix}timestamp") if at not in (None, "") else None
    for name in ("properties", "traits", "context"):
        _object(body, name, prefix)
    if kind == "alias":
        if user_id is None or _ident(body.get("previousId"), f"{prefix}previousId") is None:
            raise InvalidInput(f"{prefix}previousId", f"an alias needs {prefix}previousId and {prefix}userId")
    elif user_id is None and anonymous_id is None:
        article = "an" if kind[0] in "aeiou" else "a"
        raise InvalidInput(f"{prefix}userId", f"{article} {kind} needs {prefix}userId or {prefix}anonymousId")
    if kind == "track":
        check_text(body.get("event"), f"{prefix}event", 255, one_line=True)
        if not str(body["event"]).strip():
            raise InvalidInput(f"{prefix}event", f"{prefix}event must name the event, e.g. Form Submitted")
    if kind == "group" and _ident(body.get("groupId"), f"{prefix}groupId") is None:
        raise InvalidInput(f"{prefix}groupId", f"a group needs {prefix}groupId")
    return Message(prefix, kind, user_id, anonymous_id, message_id, occurred_at, body)


class Naming(NamedTuple):
    """How track names become event names: ``SEGMENT_EVENT_MAP`` and the namespaces only Nudge may use."""

    overrides: Mapping[str, str]
    reserved: Collection[str]


def _event(message: Message, naming: Naming) -> tuple[str, dict[str, Any]]:
    """The Nudge event name and props of a track, page, screen or group (checked as events' props are, but named
    as the message's ``properties``)."""
    body, prefix = message.body, message.prefix
    props = dict(check_json(_object(body, "properties", prefix), f"{prefix}properties"))
    if message.kind == "track":
        name = event_name(str(body["event"]).strip(), naming.overrides, naming.reserved)
        if name is None:
            raise InvalidInput(
                f"{prefix}event",
                f"{prefix}event {body['event']!r} gives no Nudge event name (each word must start with a letter); "
                "map it with NUDGE_SEGMENT_EVENT_MAP",
            )
        return name, props
    if message.kind == "group":
        traits = check_json(_object(body, "traits", prefix), f"{prefix}traits")  # stored in the props: checked alike
        return EVENT_OF["group"], {"group_id": str(body["groupId"]), "traits": traits}
    for key in ("name", "category"):
        if isinstance(body.get(key), str):
            props.setdefault(key, check_json(body[key], f"{prefix}{key}"))
    return EVENT_OF[message.kind], props


def contact_of_traits(traits: Mapping[str, Any], custom: Collection[str]) -> dict[str, Any]:
    """Contact attributes from identify traits: email, phone, first/last name (``firstName`` or ``first_name``,
    else ``name`` split at its first space), and the custom fields defined under a trait's name."""
    out: dict[str, Any] = {key: traits[key] for key in ("email", "phone") if traits.get(key) is not None}
    for name, keys in (("first_name", ("firstName", "first_name")), ("last_name", ("lastName", "last_name"))):
        value = next((traits[k] for k in keys if traits.get(k) is not None), None)
        if value is not None:
            out[name] = value
    full = traits.get("name")
    if isinstance(full, str) and full.strip() and "first_name" not in out and "last_name" not in out:
        first, _, last = full.strip().partition(" ")
        out["first_name"] = first
        if last.strip():
            out["last_name"] = last.strip()
    fields = {name: value for name, value in traits.items() if name in custom}
    if fields:
        out["fields"] = fields
    return out


def _dedup_key(message_id: str) -> str:
    """The idempotency key of a messageId (a long one by its digest: keys have 255 characters)."""
    key = f"{ENDPOINT}:{message_id}"
    return key if len(key) <= MAX_ID else f"{ENDPOINT}:sha256:{hashlib.sha256(message_id.encode()).hexdigest()}"


def _unseen(session: Session, api_key_id: int, messages: list[Message]) -> list[Message]:
    """The messages whose messageId was not stored in the last 24 hours (nor earlier in this request)."""
    keys = {_dedup_key(m.message_id) for m in messages if m.message_id}
    seen: set[str] = set()
    expired: list[int] = []
    cutoff = utcnow() - KEEP
    ordered = sorted(keys)
    for start in range(0, len(ordered), 500):
        rows = session.execute(
            select(IdempotencyRecord.id, IdempotencyRecord.key, IdempotencyRecord.created_at).where(
                IdempotencyRecord.api_key_id == api_key_id, IdempotencyRecord.key.in_(ordered[start : start + 500])
            )
        )
        for ident, key, created_at in rows:
            if created_at < cutoff:
                expired.append(ident)
            else:
                seen.add(key)
    if expired:
        session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id.in_(expired)))
    out = []
    for message in messages:
        dedup = _dedup_key(message.message_id) if message.message_id else None
        if dedup in seen:
            continue
        if dedup is not None:
            seen.add(dedup)
        out.append(message)
    return out


def _known_visitor(session: Session, anonymous_id: str) -> Contact | None:
    """The contact of *anonymous_id*, if it was seen before."""
    contact_id = session.scalar(select(AnonymousId.contact_id).where(AnonymousId.anonymous_id == anonymous_id))
    return session.get(Contact, contact_id) if contact_id is not None else None


def _visitor(session: Session, anonymous_id: str) -> Contact:
    """The contact of *anonymous_id*: a new visitor (no email, no external id) the first time."""
    known = _known_visitor(session, anonymous_id)
    if known is not None:
        return known
    contact = Contact(fields={}, score=0)
    session.add(contact)
    session.flush()
    _link(session, anonymous_id, contact.id)
    return contact


def _link(session: Session, anonymous_id: str, contact_id: int) -> None:
    """Make *anonymous_id* name *contact_id* from now on."""
    row = session.scalar(select(AnonymousId).where(AnonymousId.anonymous_id == anonymous_id))
    if row is None:
        session.add(AnonymousId(anonymous_id=anonymous_id, contact_id=contact_id))
    else:
        row.contact_id = contact_id
    session.flush()


def _identify(
    session: Session, message: Message, custom: Mapping[str, str], region: str | None, actor: str
) -> list[int]:
    """Name the contact: traits onto it (found by userId, then email), the visitor of its anonymousId merged in.

    The traits are ``traits`` over ``context.traits`` (where the RudderStack clients put them).

    :return: the ids of the ``contact.created`` / ``contact.updated`` events it records.
    """
    prefix = f"{message.prefix}traits."
    context = _object(message.body, "context", message.prefix)
    traits = {
        **_object(context, "traits", f"{message.prefix}context."),
        **_object(message.body, "traits", message.prefix),
    }
    spec = contact_of_traits(traits, custom)
    if message.user_id is not None:
        spec["external_id"] = message.user_id
    cleaned = clean_contact(session, spec, prefix=prefix, region=region, known_fields=custom)
    visitor = _known_visitor(session, message.anonymous_id) if message.anonymous_id else None
    created = False
    changed: set[str] = set()
    target: Contact
    if cleaned.get("email") or cleaned.get("external_id"):
        found = find_contact(session, email=cleaned.get("email"), external_id=cleaned.get("external_id"))
        user = cleaned.get("external_id")
        if found is not None:
            check_same_user(found, cleaned, prefix)
            user = user or found.external_id
        if visitor is not None and other_user(visitor, user):
            visitor = None  # a browser shared with another user: it is this user's from now on, nothing merges
        if found is None and visitor is None:
            target, created = create_contact(session, cleaned, prefix=prefix), True
        elif found is None:
            target = apply_changes(session, cast(Contact, visitor), cleaned, prefix=prefix, changed=changed)
        else:
            target = apply_changes(session, found, cleaned, prefix=prefix, changed=changed)
            if visitor is not None and visitor.id != target.id:
                merge_contacts(session, target, visitor, actor=actor)
    else:  # traits of someone not identified yet: onto the visitor
        created = visitor is None
        target = apply_changes(
            session, visitor or _visitor(session, str(message.anonymous_id)), cleaned, prefix=prefix, changed=changed
        )
    session.flush()
    if message.anonymous_id:
        _link(session, message.anonymous_id, target.id)
    return [e.id for e in announce_changes(session, target, created=created, changed=changed)]


def _alias(session: Session, message: Message, actor: str) -> None:
    """``previousId`` (an anonymous id or an earlier user id) and ``userId`` are one person from now on.

    The user ids are trimmed as the external ids of every other message are (``" u-1 "`` is ``u-1``); an
    anonymous id is taken as sent.
    """
    previous = str(message.body["previousId"])
    user_id = str(message.user_id).strip()
    before = _known_visitor(session, previous) or find_contact(session, external_id=previous.strip())
    target = find_contact(session, external_id=user_id)
    if before is None:
        if target is None:
            target = create_contact(session, {"external_id": user_id})
        _link(session, previous, target.id)
    elif target is None:
        before.external_id = user_id
    elif target.id != before.id:
        merge_contacts(session, target, before, actor=actor)
    session.flush()


def store_messages(
    session: Session,
    messages: list[Message],
    *,
    api_key_id: int,
    naming: Naming,
    region: str | None,
    actor: str,
) -> list[int]:
    """Store *messages* in order (in the caller's transaction, which commits); skip those seen before.

    :return: the ids of the events stored, for the engine.
    :raises InvalidInput: naming the first offending field; nothing is to be committed then.
    """
    fresh = _unseen(session, api_key_id, messages)
    custom = definitions(session) if any(m.kind == "identify" for m in fresh) else {}
    event_ids: list[int] = []
    pending: list[tuple[str, dict[str, Any]]] = []  # events of known users, stored together

    def flush() -> None:
        if pending:
            prefixes = [prefix for prefix, _item in pending]
            prepared = prepare_events(
                session, [item for _p, item in pending], region=region, prefix=lambda i: prefixes[i]
            )
            event_ids.extend(event_id for event_id, _contact in store_events(session, prepared))
            pending.clear()

    for message in fresh:
        if message.kind == "alias":
            flush()
            _alias(session, message, actor)
        elif message.kind == "identify":
            flush()
            event_ids.extend(_identify(session, message, custom, region, actor))
        else:
            name, props = _event(message, naming)
            if message.user_id is not None:
                item = {"contact": {"external_id": message.user_id}, "event": name, "props": props}
                pending.append((message.prefix, {**item, "occurred_at": message.occurred_at}))
            else:
                contact = _visitor(session, str(message.anonymous_id))
                event = record_event(session, contact, name, props, occurred_at=message.occurred_at)
                event_ids.append(event.id)
    flush()
    remembered = [
        {
            "api_key_id": api_key_id,
            "key": _dedup_key(m.message_id),
            "endpoint": ENDPOINT,
            "request_hash": "",
            "status_code": 200,
            "response": {"success": True},
            "created_at": utcnow(),
        }
        for m in fresh
        if m.message_id
    ]
    if remembered:
        session.execute(insert(IdempotencyRecord), remembered)
    return event_ids


__all__ = ["KINDS", "Message", "Naming", "check_message", "contact_of_traits", "store_messages"]
