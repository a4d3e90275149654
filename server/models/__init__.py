"""SQLAlchemy models: the database is Nudge's source of truth."""
from .accounts import AdminSession, ApiKey, Role, Scope, User
from .base import Base, JsonType, UTCDateTime, utcnow
from .consent import Consent, ConsentStatus, Suppression, SuppressionReason
from .contacts import Contact, ContactTag
from .crm import (AuditEntry, FieldDefinition, FieldType, Form, IdempotencyRecord, Note, Segment, Task,
                  TaskStatus)
from .content import InboundSource, MessageStatusChange, Template, WebhookEndpoint
from .events import Event, ProviderReceipt
from .journeys import (Enrolment, EnrolmentState, JourneyLog, Rule, RuleStatus, RuleTest, RuleVersion, ScheduleTimer,
                       TriggerTimer)
from .messages import ChannelHealth, Message, MessageStatus

__all__ = [
    "Enrolment", "EnrolmentState", "JourneyLog", "Rule", "RuleStatus", "RuleVersion", "ScheduleTimer", "TriggerTimer",
    "AuditEntry", "FieldDefinition", "FieldType", "Form", "IdempotencyRecord", "Note", "Segment", "Task", "TaskStatus",
    "AdminSession", "ApiKey", "Base", "Consent", "ConsentStatus", "InboundSource", "MessageStatusChange",
    "Suppression", "SuppressionReason", "Template", "WebhookEndpoint", "ChannelHealth", "Contact", "ContactTag", "Event",
    "JsonType", "RuleTest",
    "ProviderReceipt", "Message", "MessageStatus",
    "Role", "Scope", "UTCDateTime", "User", "utcnow",
]
