"""Changing one contact on someone's behalf, the same way from the API and the admin UI: edit, add a note, export.

Each writes its audit entry (ids and names only) and leaves the commit to the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from ..models import Contact, Event, Note
from .errors import InvalidInput
from .events import announce_changes
from .lifecycle import export_contact
from .normalize import check_text
from .service import apply_changes, audit

MAX_NOTE = 20000


def update_contact(
    session: Session, contact: Contact, cleaned: Mapping[str, Any], *, actor: str, source: str = "api"
) -> list[Event]:
    """Apply *cleaned* (from :func:`~server.contacts.clean_contact`) as ``PATCH /contacts/{id}`` does: only the
    given attributes change, custom fields merge, tags (when given) replace the old ones.

    :return: the events the change means for the rules (``contact.updated``, ``tag.added`` …): enqueue them
        after the commit.
    :raises InvalidInput: when the change would leave the contact with neither email nor external id;
        :class:`~server.contacts.Conflict` when the email or external id belongs to another contact.
    """
    if ("email" in cleaned or "external_id" in cleaned) and not (
        cleaned.get("email", contact.email) or cleaned.get("external_id", contact.external_id)
    ):
        raise InvalidInput("email", "a contact keeps an email or an external_id; set one before clearing the other")
    before = {t.tag for t in contact.tags}
    changed: set[str] = set()
    apply_changes(session, contact, cleaned, replace_tags=True, changed=changed)
    audit(session, actor, "contact.updated", "contact", contact.id, changed=sorted(cleaned))
    return announce_changes(session, contact, created=False, changed=changed, tags_before=before, source=source)


def add_note(session: Session, contact: Contact, body: Any, *, author: str, actor: str) -> Note:
    """A note on *contact*.

    :raises InvalidInput: (field ``body``) for an empty, too long or unstorable text.
    """
    text = check_text(body, "body", MAX_NOTE)
    note = Note(contact_id=contact.id, body=text, author=author)
    session.add(note)
    session.flush()
    audit(session, actor, "note.created", "contact", contact.id, note_id=note.id)
    return note


def export_for(
    session: Session, contact: Contact, *, secret: str, channels: Mapping[str, tuple[str, ...]], actor: str
) -> dict[str, Any]:
    """Everything held on *contact* (:func:`~server.contacts.export_contact`), the export audited."""
    data = export_contact(session, contact, secret=secret, channels=channels)
    audit(session, actor, "contact.exported", "contact", contact.id)
    return data


__all__ = ["MAX_NOTE", "add_note", "export_for", "update_contact"]
