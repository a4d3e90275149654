"""What this plugin knows of Twilio: its paths and error codes, and the opt-outs Twilio reports."""

from __future__ import annotations

from flask import has_app_context

from server.sdk import record_consent

CHANNEL = "sms"
TWILIO_API = "https://api.twilio.com"
#: where Twilio posts delivery reports and incoming messages (below ``BASE_URL``)
STATUS_PATH = "/sms/twilio/status"
INBOUND_PATH = "/sms/twilio/inbound"
#: who told us, in the consent ledger
SOURCE = "twilio"

UNSUBSCRIBED = 21610  # the recipient replied STOP: Twilio refuses every send to them
INVALID_NUMBERS = {21211, 21614}  # not a valid phone number / not a mobile number
TOO_MANY_REQUESTS = 20429


def record_provider_opt_out(phone: str) -> None:
    """Twilio refused a send with error 21610: the number replied STOP at some point, so write that down.

    Only inside the app (the worker, a callback); a channel used on its own has nowhere to write it.
    """
    if has_app_context():
        record_consent(
            CHANNEL,
            phone,
            False,
            source=f"{SOURCE}:{UNSUBSCRIBED}",
            event="sms.opted_out",
            props={"phone": phone, "via": f"error {UNSUBSCRIBED}"},
        )
