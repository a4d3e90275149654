"""SQLAlchemy models: the database is Nudge's source of truth."""

from .accounts import AdminSession, ApiKey, Role, Scope, User
from .base import Base, JsonType, UTCDateTime, utcnow
from .consent import Consent, ConsentStatus, Suppression, SuppressionReason
from .contacts import Contact, ContactTag
from .content import InboundSource, MessageStatusChange, Template, WebhookEndpoint
from .crm import AuditEntry, FieldDefinition, FieldType, Form, IdempotencyRecord, Note, Segment, Task, TaskStatus
from .events import Event, ProviderReceipt
from .imports import ImportRecord
from .journeys import (
    Enrolment,
    EnrolmentState,
    JourneyLog,
    Rule,
    RuleStatus,
    RuleTest,
    RuleVersion,
    ScheduleTimer,
    TriggerTimer,
)
from .messages import ChannelHealth, Message, MessageStatus
from .outreach import BroadcastRecord, FormSubmission
from .settings import SettingsVersion, StoredSetting
from .splits import SplitAssignment, SplitTest
from .stats import Attribution, StatCounter, StatWatermark
from .visitors import AnonymousId

__all__ = [
    "AdminSession",
    "AnonymousId",
    "ApiKey",
    "Attribution",
    "AuditEntry",
    "Base",
    "BroadcastRecord",
    "ChannelHealth",
    "Consent",
    "ConsentStatus",
    "Contact",
    "ContactTag",
    "Enrolment",
    "EnrolmentState",
    "Event",
    "FieldDefinition",
    "FieldType",
    "Form",
    "FormSubmission",
    "IdempotencyRecord",
    "ImportRecord",
    "InboundSource",
    "JourneyLog",
    "JsonType",
    "Message",
    "MessageStatus",
    "MessageStatusChange",
    "Note",
    "ProviderReceipt",
    "Role",
    "Rule",
    "RuleStatus",
    "RuleTest",
    "RuleVersion",
    "ScheduleTimer",
    "Scope",
    "Segment",
    "SettingsVersion",
    "SplitAssignment",
    "SplitTest",
    "StatCounter",
    "StatWatermark",
    "StoredSetting",
    "Suppression",
    "SuppressionReason",
    "Task",
    "TaskStatus",
    "Template",
    "TriggerTimer",
    "UTCDateTime",
    "User",
    "WebhookEndpoint",
    "utcnow",
]
