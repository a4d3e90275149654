"""SQLAlchemy models: the database is Nudge's source of truth."""
from .accounts import ApiKey, Scope, User
from .base import Base, JsonType, UTCDateTime, utcnow
from .contacts import Contact, ContactTag
from .events import Event
from .messages import Message, MessageStatus

__all__ = [
    "ApiKey", "Base", "Contact", "ContactTag", "Event", "JsonType", "Message", "MessageStatus",
    "Scope", "UTCDateTime", "User", "utcnow",
]
