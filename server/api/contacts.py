"""/api/v1/contacts: CRUD, upsert by email or external id, merge, export, erase, notes, consents."""

from __future__ import annotations

from typing import Any

from flask import current_app, jsonify
from sqlalchemy import exists, select

from ..consent import current_consents, record_consent
from ..contacts import (
    InvalidInput,
    announce_changes,
    apply_changes,
    audit,
    clean_contact,
    contact_dict,
    create_contact,
    erase_contact,
    find_contact,
    merge_contacts,
    opt_out,
    upsert_contact,
)
from ..contacts.service import MAX_SCORE, clean_tag
from ..db import get_session
from ..engine.wake import enqueue_events
from ..models import Consent, Contact, ContactTag, Event, Note, Scope
from . import bp
from .common import actor, channels, secret, text
from .pagination import paginate, sort_param
from .spec import CURSOR, ID, LIMIT, TIMESTAMP, endpoint, get_or_404, nullable, page_of, query_param, schema

CONTACT_FIELDS: dict[str, Any] = {
    "external_id": text(255, nullable=True, description="your system's id for the contact"),
    "email": text(320, nullable=True, format="email"),
    "phone": text(64, nullable=True, description="any format with a country code; stored as E.164"),
    "first_name": text(255, nullable=True),
    "last_name": text(255, nullable=True),
    "timezone": text(64, nullable=True, description="IANA name, e.g. Europe/Berlin"),
    "locale": text(32, nullable=True, description="e.g. en or de-AT"),
    "stage": text(64, nullable=True, description="lifecycle stage, e.g. lead, customer"),
    "score": {"type": "integer", "minimum": -MAX_SCORE, "maximum": MAX_SCORE},
    "fields": {
        "type": "object",
        "maxProperties": 100,
        "description": "custom field values by name; define fields first (POST /fields); null removes one",
    },
    "tags": {"type": "array", "maxItems": 100, "items": text(128, min_length=1)},
}
CONTACT_INPUT = schema("ContactInput", {"type": "object", "additionalProperties": False, "properties": CONTACT_FIELDS})
CONTACT = schema(
    "Contact",
    {
        "type": "object",
        "properties": {
            "id": ID,
            **{
                k: {kk: vv for kk, vv in v.items() if kk not in ("maxLength", "minimum", "maximum")}
                for k, v in CONTACT_FIELDS.items()
            },
            "created_at": TIMESTAMP,
            "updated_at": TIMESTAMP,
            "last_seen": nullable(TIMESTAMP),
        },
    },
)
UPSERTED = schema(
    "UpsertResult", {"type": "object", "properties": {"contact": CONTACT, "created": {"type": "boolean"}}}
)
NOTE = schema(
    "Note",
    {
        "type": "object",
        "properties": {
            "id": ID,
            "contact_id": ID,
            "body": {"type": "string"},
            "author": {"type": "string"},
            "created_at": TIMESTAMP,
        },
    },
)
NOTE_INPUT = schema(
    "NoteInput",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["body"],
        "properties": {"body": text(20000, min_length=1), "author": text(255)},
    },
)
CONSENT = schema(
    "Consent",
    {
        "type": "object",
        "properties": {
            "id": ID,
            "channel": {"type": "string"},
            "status": {"type": "string", "enum": ["granted", "revoked"]},
            "source": {"type": "string"},
            "recorded_at": TIMESTAMP,
            "ip": {"type": "string", "nullable": True},
            "user_agent": {"type": "string", "nullable": True},
            "wording": {"type": "string", "nullable": True},
        },
    },
)
CONSENT_INPUT = schema(
    "ConsentInput",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["channel", "granted"],
        "properties": {
            "channel": text(
                64, min_length=1, pattern=r"^[a-z][a-z0-9_]*$", pattern_hint="be a channel name such as email or sms"
            ),
            "granted": {"type": "boolean"},
            "source": text(128, min_length=1, description="where the consent was given; default api"),
            "wording": text(20000, nullable=True, description="the text the contact agreed to"),
        },
    },
)
MERGE_INPUT = schema(
    "MergeInput",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["from_id"],
        "properties": {"from_id": {**ID, "description": "the contact to fold in and delete"}},
    },
)
ERASED = schema("Erased", {"type": "object", "properties": {"erased": ID, "removed": {"type": "object"}}})
EVENT = schema(
    "Event",
    {
        "type": "object",
        "properties": {
            "id": ID,
            "contact_id": ID,
            "name": {"type": "string"},
            "props": {"type": "object"},
            "source": {"type": "string"},
            "occurred_at": TIMESTAMP,
            "received_at": TIMESTAMP,
            "processed_at": nullable(TIMESTAMP),
        },
    },
)


def _contact(contact_id: int) -> Contact:
    return get_or_404(Contact, contact_id, "contact")


def event_dict(event: Event) -> dict[str, Any]:
    from ..contacts import iso

    return {
        "id": event.id,
        "contact_id": event.contact_id,
        "name": event.name,
        "props": event.props,
        "source": event.source,
        "occurred_at": iso(event.occurred_at),
        "received_at": iso(event.received_at),
        "processed_at": iso(event.processed_at),
    }


def _consent_dict(row: Consent) -> dict[str, Any]:
    from ..contacts import iso

    return {
        "id": row.id,
        "channel": row.channel,
        "status": row.status,
        "source": row.source,
        "recorded_at": iso(row.recorded_at),
        "ip": row.ip,
        "user_agent": row.user_agent,
        "wording": row.wording,
    }


@endpoint(
    bp,
    "GET",
    "/contacts",
    summary="List contacts",
    tag="contacts",
    responses={200: ("a page", page_of("Contact"))},
    query=[
        # not empty: an empty filter matched every contact (?email= listed them all)
        query_param("email", text(320, min_length=1), "exact address (normalised before matching)"),
        query_param("external_id", text(255, min_length=1)),
        query_param("tag", text(128, min_length=1)),
        query_param("stage", text(64, min_length=1)),
        sort_param(["id", "created_at", "updated_at", "score"], "id"),
        LIMIT,
        CURSOR,
    ],
)
def list_contacts(query: dict[str, Any]):
    session = get_session()
    stmt = select(Contact)
    if query.get("email"):
        stmt = stmt.where(Contact.email == query["email"].strip().lower())
    if query.get("external_id"):
        stmt = stmt.where(Contact.external_id == query["external_id"])
    if query.get("tag"):
        stmt = stmt.where(exists().where(ContactTag.contact_id == Contact.id, ContactTag.tag == query["tag"]))
    if query.get("stage"):
        stmt = stmt.where(Contact.stage == query["stage"])
    rows, cursor = paginate(
        session, stmt, Contact, sort=query["sort"], limit=query["limit"], cursor=query.get("cursor")
    )
    return jsonify({"data": [contact_dict(c) for c in rows], "next_cursor": cursor})


def _tags_of(session, cleaned) -> set[str]:
    """The tags of the contact an upsert will find, before it changes (empty for a new one)."""
    found = find_contact(session, email=cleaned.get("email"), external_id=cleaned.get("external_id"))
    return {t.tag for t in found.tags} if found is not None else set()


@endpoint(
    bp,
    "POST",
    "/contacts",
    summary="Create a contact",
    tag="contacts",
    body=CONTACT_INPUT,
    responses={201: ("created", CONTACT)},
)
def post_contact(body: dict[str, Any]):
    session = get_session()
    contact = create_contact(session, clean_contact(session, body, region=_region()))
    audit(session, actor(), "contact.created", "contact", contact.id)
    events = announce_changes(session, contact, created=True, tags_before=set())
    session.commit()
    enqueue_events([event.id for event in events])
    return jsonify(contact_dict(contact)), 201


@endpoint(
    bp,
    "POST",
    "/contacts/upsert",
    summary="Create or update a contact by external_id or email",
    tag="contacts",
    scope=Scope.INGEST,
    body=CONTACT_INPUT,
    responses={200: ("updated", UPSERTED), 201: ("created", UPSERTED)},
    description="The contact is found by external_id first, then by email. Custom fields merge; tags are added.",
)
def upsert(body: dict[str, Any]):
    session = get_session()
    cleaned = clean_contact(session, body, region=_region())
    before = _tags_of(session, cleaned)
    changed: set[str] = set()
    contact, created = upsert_contact(session, cleaned, changed=changed)
    audit(session, actor(), "contact.created" if created else "contact.updated", "contact", contact.id, via="upsert")
    events = announce_changes(session, contact, created=created, changed=changed, tags_before=before)
    session.commit()
    enqueue_events([event.id for event in events])
    return jsonify({"contact": contact_dict(contact), "created": created}), 201 if created else 200


@endpoint(
    bp,
    "GET",
    "/contacts/{contact_id}",
    summary="Get a contact",
    tag="contacts",
    responses={200: ("the contact", CONTACT)},
)
def get_contact(contact_id: int):
    return jsonify(contact_dict(_contact(contact_id)))


@endpoint(
    bp,
    "PATCH",
    "/contacts/{contact_id}",
    summary="Update a contact",
    tag="contacts",
    body=CONTACT_INPUT,
    responses={200: ("the contact", CONTACT)},
    description="Only the given attributes change; null clears one; tags, when given, replace the old ones.",
)
def patch_contact(contact_id: int, body: dict[str, Any]):
    from ..contacts.editing import update_contact

    session = get_session()
    contact = _contact(contact_id)
    events = update_contact(session, contact, clean_contact(session, body, region=_region()), actor=actor())
    session.commit()
    enqueue_events([event.id for event in events])
    return jsonify(contact_dict(contact))


@endpoint(
    bp,
    "DELETE",
    "/contacts/{contact_id}",
    summary="Erase a contact (GDPR/CCPA)",
    tag="contacts",
    responses={200: ("erased", ERASED)},
    description="Removes the contact and everything about it; keeps a salted hash of its addresses in the "
    "suppression list so a re-import is not mailed. Audited.",
)
def delete_contact(contact_id: int):
    session = get_session()
    removed = erase_contact(session, _contact(contact_id), secret=secret(), actor=actor(), channels=channels())
    session.commit()
    return jsonify({"erased": contact_id, "removed": removed})


@endpoint(
    bp,
    "GET",
    "/contacts/{contact_id}/export",
    summary="Export everything held on a contact",
    tag="contacts",
    responses={200: ("all data on the contact, consent records included", {"type": "object"})},
)
def export(contact_id: int):
    from ..contacts.editing import export_for

    session = get_session()
    data = export_for(session, _contact(contact_id), secret=secret(), channels=channels(), actor=actor())
    session.commit()
    return jsonify(data)


@endpoint(
    bp,
    "POST",
    "/contacts/{contact_id}/merge",
    summary="Merge another contact into this one",
    tag="contacts",
    body=MERGE_INPUT,
    responses={200: ("the surviving contact", CONTACT)},
    description="Events, consents, messages, notes, tasks, tags and enrolments of from_id move here; "
    "from_id is deleted.",
)
def merge(contact_id: int, body: dict[str, Any]):
    session = get_session()
    into = _contact(contact_id)
    if body["from_id"] == contact_id:
        raise InvalidInput("from_id", "from_id is this contact; name the other contact to merge in")
    other = get_or_404(Contact, body["from_id"], "contact")
    merge_contacts(session, into, other, actor=actor())
    session.commit()
    return jsonify(contact_dict(into))


@endpoint(
    bp,
    "GET",
    "/contacts/{contact_id}/events",
    summary="A contact's events, newest first",
    tag="contacts",
    query=[LIMIT, CURSOR],
    responses={200: ("a page", page_of("Event"))},
)
def contact_events(contact_id: int, query: dict[str, Any]):
    _contact(contact_id)
    rows, cursor = paginate(
        get_session(),
        select(Event).where(Event.contact_id == contact_id),
        Event,
        sort="-id",
        limit=query["limit"],
        cursor=query.get("cursor"),
    )
    return jsonify({"data": [event_dict(e) for e in rows], "next_cursor": cursor})


@endpoint(
    bp,
    "PUT",
    "/contacts/{contact_id}/tags/{tag}",
    summary="Add a tag",
    tag="contacts",
    responses={200: ("the contact", CONTACT)},
)
def put_tag(contact_id: int, tag: str):
    session = get_session()
    contact = _contact(contact_id)
    apply_changes(session, contact, {"tags": [clean_tag(tag)]})
    session.commit()
    return jsonify(contact_dict(contact))


@endpoint(
    bp,
    "DELETE",
    "/contacts/{contact_id}/tags/{tag}",
    summary="Remove a tag",
    tag="contacts",
    responses={200: ("the contact", CONTACT)},
)
def delete_tag(contact_id: int, tag: str):
    session = get_session()
    contact = _contact(contact_id)
    tag = clean_tag(tag)  # as PUT stores it: " vip " names the tag vip
    for row in list(contact.tags):
        if row.tag == tag:
            contact.tags.remove(row)
    session.commit()
    return jsonify(contact_dict(contact))


@endpoint(
    bp,
    "GET",
    "/contacts/{contact_id}/notes",
    summary="A contact's notes",
    tag="contacts",
    responses={200: ("the notes, oldest first", {"type": "array", "items": NOTE})},
)
def list_notes(contact_id: int):
    _contact(contact_id)
    rows = get_session().scalars(select(Note).where(Note.contact_id == contact_id).order_by(Note.id))
    return jsonify([_note_dict(n) for n in rows])


@endpoint(
    bp,
    "POST",
    "/contacts/{contact_id}/notes",
    summary="Add a note",
    tag="contacts",
    body=NOTE_INPUT,
    responses={201: ("the note", NOTE)},
)
def post_note(contact_id: int, body: dict[str, Any]):
    from ..contacts.editing import add_note

    session = get_session()
    note = add_note(session, _contact(contact_id), body["body"], author=body.get("author") or actor(), actor=actor())
    session.commit()
    return jsonify(_note_dict(note)), 201


def _note_dict(note: Note) -> dict[str, Any]:
    from ..contacts import iso

    return {
        "id": note.id,
        "contact_id": note.contact_id,
        "body": note.body,
        "author": note.author,
        "created_at": iso(note.created_at),
    }


@endpoint(
    bp,
    "GET",
    "/contacts/{contact_id}/consents",
    summary="A contact's consent ledger",
    tag="contacts",
    responses={
        200: (
            "the ledger, oldest first, and the current status per channel",
            schema(
                "ConsentLedger",
                {
                    "type": "object",
                    "properties": {"current": {"type": "object"}, "ledger": {"type": "array", "items": CONSENT}},
                },
            ),
        )
    },
)
def list_consents(contact_id: int):
    session = get_session()
    _contact(contact_id)
    rows = session.scalars(
        select(Consent).where(Consent.contact_id == contact_id).order_by(Consent.recorded_at, Consent.id)
    )
    return jsonify({"current": current_consents(session, contact_id), "ledger": [_consent_dict(r) for r in rows]})


@endpoint(
    bp,
    "POST",
    "/contacts/{contact_id}/consents",
    summary="Record consent given or revoked",
    tag="contacts",
    body=CONSENT_INPUT,
    responses={201: ("the ledger row", CONSENT)},
    description="A revocation also raises the channel's opt-out event (<channel>.unsubscribed unless the "
    "channel declares another, e.g. sms.opted_out) and stops queued sends on that channel.",
)
def post_consent(contact_id: int, body: dict[str, Any]):
    from flask import request

    session = get_session()
    contact = _contact(contact_id)
    source = body.get("source") or "api"
    event_ids = []
    if body["granted"]:
        installed = sorted(current_app.extensions["nudge.plugins"].channels)
        if body["channel"] not in installed:  # an opt-out is always taken: it must hold if the channel comes back
            raise InvalidInput(
                "channel",
                f"channel {body['channel']!r} is not installed, so nothing could be sent on it; "
                f"installed: {', '.join(installed) or 'none'}",
            )
        row = record_consent(
            session,
            contact_id,
            body["channel"],
            True,
            source,
            wording=body.get("wording"),
            ip=request.remote_addr,
            user_agent=request.user_agent.string,
        )
    else:
        event = opt_out(
            session,
            contact,
            body["channel"],
            source,
            ip=request.remote_addr,
            event=current_app.extensions["nudge.plugins"].opt_out_event(body["channel"]),
            user_agent=request.user_agent.string,
        )
        event_ids = [event.id] if event is not None else []
        row = session.scalars(
            select(Consent)
            .where(Consent.contact_id == contact_id, Consent.channel == body["channel"])
            .order_by(Consent.recorded_at.desc(), Consent.id.desc())
            .limit(1)
        ).one()
    audit(session, actor(), "consent.recorded", "contact", contact_id, channel=body["channel"], granted=body["granted"])
    session.commit()
    enqueue_events(event_ids)
    return jsonify(_consent_dict(row)), 201


def _region() -> str | None:
    from flask import current_app

    return current_app.config.get("PHONE_REGION")
