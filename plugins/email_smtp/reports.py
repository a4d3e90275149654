"""Reading bounce and complaint reports: RFC 3464 DSNs, RFC 5965 ARF reports, or a small JSON form.

JSON: an object or a list of objects ``{"type": "bounce"|"complaint"|"delivered", "email": "…",
"message_id": "<…>", "permanent": true, "detail": "…"}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from email.parser import HeaderParser
from email.utils import collapse_rfc2231_value
from typing import Any

from server.sdk import JsonInputError, parse_json

KINDS = {
    "bounce": "bounced",
    "bounced": "bounced",
    "complaint": "complained",
    "complained": "complained",
    "delivered": "delivered",
    "delivery": "delivered",
}


class ReportError(ValueError):
    """The body is not a report we can read; the message says what was expected."""


@dataclass(frozen=True)
class Report:
    """One recipient's outcome: ``status`` is ``bounced``, ``complained`` or ``delivered``."""

    status: str
    address: str | None
    message_id: str | None = None
    permanent: bool = True
    detail: str | None = None
    props: dict[str, Any] = field(default_factory=dict)

    @property
    def suppress(self) -> str | None:
        if self.status == "complained":
            return "complained"
        return "bounced" if self.status == "bounced" and self.permanent else None


def parse(body: bytes, content_type: str) -> list[Report]:
    """Read a report posted with *content_type*.

    :raises ReportError: when it is neither JSON nor a multipart/report message.
    """
    reports = _read(body, content_type)
    for report in reports:  # checked before any is recorded: one bad report must not leave the rest half-written
        texts = (report.address, report.message_id, report.detail, *map(str, report.props.values()))
        if any(text and "\0" in text for text in texts):
            raise ReportError("a report holds a NUL character; no address, Message-ID or detail has one")
    return reports


def _read(body: bytes, content_type: str) -> list[Report]:
    if content_type.split(";")[0].strip().lower() == "application/json":
        return _from_json(body)
    msg = message_from_bytes(body, policy=policy.default)
    if msg.get_content_type() == "message/rfc822":
        inner = _attached(msg)
        if inner is not None:
            msg = inner  # a report forwarded as an attachment-like wrapper
    if msg.get_content_type() != "multipart/report":
        raise ReportError(
            f"expected JSON or a multipart/report message (RFC 3464 / RFC 5965), got {msg.get_content_type()}"
        )
    param = msg.get_param("report-type")
    # typed str or (charset, language, value), the compat32 form of an RFC 2231 value: the text either way
    report_type = collapse_rfc2231_value(param).lower() if param else ""
    if report_type == "delivery-status":
        return _from_dsn(msg)
    if report_type == "feedback-report":
        return _from_arf(msg)
    raise ReportError(f"unsupported report-type {report_type!r}; expected delivery-status or feedback-report")


def _from_json(body: bytes) -> list[Report]:
    try:
        data = parse_json(body)
    except JsonInputError as exc:  # not JSON, nested too deep, or not text
        raise ReportError(str(exc)) from None
    items = data if isinstance(data, list) else [data]
    out = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("email"), str):
            raise ReportError('each report needs "type" and "email", e.g. {"type": "bounce", "email": "a@b.example"}')
        status = KINDS.get(str(item.get("type", "")).lower())
        if status is None:
            raise ReportError(f"unknown type {item.get('type')!r}; use bounce, complaint or delivered")
        permanent = item.get("permanent", True)
        if not isinstance(permanent, bool):  # "false" as text would read as true: a soft bounce suppressing for good
            raise ReportError(f'"permanent" must be true or false (JSON booleans), not {permanent!r:.40}')
        out.append(
            Report(
                status,
                item["email"],
                _msgid(item.get("message_id")),
                permanent,
                _text(item.get("detail")),
            )
        )
    return out


def _attached(part: EmailMessage) -> EmailMessage | None:
    """The message a ``message/rfc822`` part carries (parsed with ``policy.default``, so an EmailMessage)."""
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], EmailMessage):
        return payload[0]
    return None


def _original(msg: EmailMessage) -> Message | None:
    """The returned original message or its headers, when the report includes them."""
    for part in msg.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            return _attached(part)
        if kind == "text/rfc822-headers":
            return HeaderParser(policy=policy.default).parsestr(part.get_content())
    return None


def _fields(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    return [HeaderParser(policy=policy.default).parsestr(block) for block in str(payload).split("\n\n") if block]


def _from_dsn(msg: EmailMessage) -> list[Report]:
    original = _original(msg)
    message_id = _msgid(original["Message-ID"]) if original is not None else None
    out = []
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        for block in _fields(part)[1:]:  # the first block is about the message, the rest one per recipient
            action = str(block.get("Action", "")).strip().lower()
            status = str(block.get("Status", "")).strip()
            address = _typed_address(block.get("Final-Recipient") or block.get("Original-Recipient"))
            detail = " ".join(x for x in (status, _text(block.get("Diagnostic-Code"))) if x) or None
            if action == "failed":
                out.append(
                    Report(
                        "bounced",
                        address,
                        message_id,
                        not status.startswith("4"),
                        detail,
                        {"type": "soft" if status.startswith("4") else "hard", "status": status},
                    )
                )
            elif action == "delivered":
                out.append(Report("delivered", address, message_id, detail=detail))
    if not out:
        raise ReportError("the delivery-status report names no failed or delivered recipient")
    return out


def _from_arf(msg: EmailMessage) -> list[Report]:
    original = _original(msg)
    for part in msg.walk():
        if part.get_content_type() != "message/feedback-report":
            continue
        fields = _fields(part)[0]
        address = _typed_address(fields.get("Original-Rcpt-To"))
        if address is None and original is not None:
            address = _text(original["To"])
            address = address and address.rsplit("<", 1)[-1].rstrip(">").strip()
        feedback = str(fields.get("Feedback-Type", "abuse")).strip().lower()
        message_id = _msgid(original["Message-ID"]) if original is not None else None
        return [
            Report(
                "complained", address, message_id, detail=f"feedback-type {feedback}", props={"feedback_type": feedback}
            )
        ]
    raise ReportError("the feedback report has no message/feedback-report part")


def _typed_address(value: Any) -> str | None:
    """``rfc822; a@b.example`` → ``a@b.example``."""
    if value is None:
        return None
    text = str(value).strip()
    return (text.split(";", 1)[1] if ";" in text else text).strip().strip("<>") or None


def _msgid(value: Any) -> str | None:
    if not value:
        return None
    text = str(value).strip()
    return text if text.startswith("<") else f"<{text}>"


def _text(value: Any) -> str | None:
    return " ".join(str(value).split())[:500] if value else None
