"""The CRM services: contacts and their fields, merge, erase, export and import.

Used by the API, the hosted forms, the CLI and the engine's ingest; nothing here knows about HTTP.
"""

from .errors import Conflict, InvalidInput
from .events import announce_changes, opt_out, record_event
from .fields import coerce_fields, coerce_value, define_field, definitions
from .lifecycle import address_channels, erase_contact, export_contact, merge_contacts, register_merge_handler
from .normalize import iso, normalize_email, normalize_phone
from .service import (
    apply_changes,
    audit,
    clean_contact,
    contact_dict,
    create_contact,
    find_contact,
    set_tags,
    upsert_contact,
)

__all__ = [
    "Conflict",
    "InvalidInput",
    "address_channels",
    "announce_changes",
    "apply_changes",
    "audit",
    "clean_contact",
    "coerce_fields",
    "coerce_value",
    "contact_dict",
    "create_contact",
    "define_field",
    "definitions",
    "erase_contact",
    "export_contact",
    "find_contact",
    "iso",
    "merge_contacts",
    "normalize_email",
    "normalize_phone",
    "opt_out",
    "record_event",
    "register_merge_handler",
    "set_tags",
    "upsert_contact",
]
