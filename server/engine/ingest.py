"""Recording events: upsert the contact, store the event; the caller enqueues its processing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from ..contacts.errors import InvalidInput
from ..contacts.events import record_event
from ..contacts.service import CONTACT_KEYS, clean_contact
from ..contacts.service import upsert_contact as _upsert
from ..models import Contact

IDENTITY_FIELDS = ("email", "external_id")
__all__ = ["IDENTITY_FIELDS", "IngestError", "record_event", "upsert_contact"]

#: kept for callers that catch ``IngestError``: the event cannot be stored as given; ``field`` names the input
IngestError = InvalidInput


def upsert_contact(
    session: Session,
    spec: Mapping[str, Any],
    *,
    region: str | None = None,
    strict: bool = False,
    prefix: str = "contact.",
) -> Contact:
    """Find the contact by external id or email, creating it when new.

    The engine moves its ``last_seen`` when it processes the event (:func:`server.engine.dispatch.mark_seen`).

    :param spec: contact attributes (``email``, ``external_id``, ``first_name`` …, ``fields``, ``tags``);
        ``None`` values are ignored; unknown keys are ignored unless *strict*.
    :param prefix: how errors name the object (``events[3].contact.``).
    :raises InvalidInput: for an invalid value, naming it as ``<prefix><name>``.
    """
    given = {k: v for k, v in spec.items() if v is not None and (strict or k in CONTACT_KEYS)}
    cleaned = clean_contact(session, given, prefix=prefix, region=region)
    contact, _created = _upsert(session, cleaned, prefix=prefix)
    session.flush()
    return contact
