"""What Twilio tells us about a text, written down through the plugin API: status history, outcomes, opt-outs.

Used by this plugin's status endpoint; it runs inside the app context.
"""

from __future__ import annotations

import logging
from typing import Any

from server.sdk import DeliveryStatus, find_message, record_status, suppress

from .twilio import CHANNEL, UNSUBSCRIBED, record_provider_opt_out

log = logging.getLogger(__name__)

#: Twilio's message statuses in the order they can happen; the last rank holds the alternative endings.
#: ``failed`` is also what the status history says after an ``undelivered`` report.
RANK = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "canceled": 4,
}
#: endings that raise an event: Twilio status -> event suffix (``sms.delivered``, ``sms.failed``)
FINAL = {"delivered": "delivered", "undelivered": "failed", "failed": "failed"}
FAILED = {"undelivered", "failed"}
#: Twilio errors meaning the number can never get an SMS: unknown handset, landline or unreachable carrier
UNREACHABLE = {"30005", "30006"}


def apply_status(sid: str, status: str, error_code: str | None) -> None:
    """Record a delivery report, but only if it moves the message forward (callbacks arrive out of order).

    ``delivered`` and ``undelivered``/``failed`` are outcomes (status history, ``sms.delivered`` /
    ``sms.failed``); the steps before them only join the status history.
    """
    status = status.lower()
    if status not in RANK:
        log.info("ignoring unknown Twilio status %r for %s", status, sid)
        return
    message = find_message(CHANNEL, sid)
    if message is None:
        log.info("status %s for unknown Twilio message %s", status, sid)
        return
    if status not in FINAL:
        record_status(DeliveryStatus(channel=CHANNEL, status=status, provider_id=sid), outcome=False, order=RANK)
        return
    props: dict[str, Any] = {"provider_id": sid, "status": status}
    failed = status in FAILED
    detail = None
    if failed:
        detail = f"Twilio reports {status}" + (f" (error {error_code})" if error_code else "")
        props["error_code"] = error_code
    report = DeliveryStatus(channel=CHANNEL, status=FINAL[status], provider_id=sid, props=props, detail=detail)
    recorded = record_status(report, fails_message=failed, order=RANK)
    if recorded.duplicate or not failed or message.address is None:
        return
    if error_code == str(UNSUBSCRIBED):
        record_provider_opt_out(message.address)
    elif error_code in UNREACHABLE:
        suppress(CHANNEL, message.address, "invalid_address", detail=f"Twilio error {error_code}")
