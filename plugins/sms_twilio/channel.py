"""The SMS channel: Twilio's Messages API through the official ``twilio`` library."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import phonenumbers
import requests
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from urllib3.exceptions import ConnectTimeoutError, InvalidHeader, NewConnectionError
from urllib3.util import Retry

from server.sdk import (
    CONSENT_GRANTED,
    UNSUBSCRIBE_PROVIDER,
    Channel,
    ChannelError,
    Check,
    OutboundMessage,
    RateLimit,
    SendResult,
    SettingError,
)

from .phone import normalise, region_of, stored_forms
from .segments import segments
from .twilio import (
    CHANNEL,
    INBOUND_PATH,
    INVALID_NUMBERS,
    STATUS_PATH,
    TOO_MANY_REQUESTS,
    TWILIO_API,
    UNSUBSCRIBED,
    record_provider_opt_out,
)

log = logging.getLogger(__name__)

#: Twilio sends from a long code at about one message a second (toll-free and short codes allow more)
DEFAULT_RATE = 1.0

__all__ = ["CHANNEL", "INBOUND_PATH", "STATUS_PATH", "SmsChannel"]


class SmsChannel(Channel):
    """Sends ``message.text`` to ``message.to`` (normalised to E.164) with a status callback to this instance."""

    name = CHANNEL
    address_field = "phone"
    #: texts wait for the morning: 21:00–08:00 in the recipient's time zone (a rule's ``quiet hours`` win)
    quiet_hours = ("21:00", "08:00")
    events = ("sms.delivered", "sms.failed", "sms.replied", "sms.opted_out", "sms.opted_in")
    #: a reply is the recipient acting (it moves last_seen)
    activity_events = ("sms.replied",)
    template_parts = ("txt",)
    required_parts = ("txt",)
    builtin_templates = {"welcome": {"txt": "Hello {{ contact.first_name or 'there' }}, thanks for signing up."}}
    #: a text needs the number's owner to have opted in; they opt out by replying STOP
    consent = CONSENT_GRANTED
    unsubscribe = UNSUBSCRIBE_PROVIDER
    opt_out_event = "sms.opted_out"
    config_schema = {
        "TWILIO_ACCOUNT_SID": {"type": "string", "required": False, "help": "ACxxxxxxxx…; needed to send SMS"},
        "TWILIO_AUTH_TOKEN": {
            "type": "string",
            "required": False,
            "secret": True,
            "help": "signs API calls and verifies Twilio's callbacks; needed to send SMS",
        },
        "TWILIO_FROM": {
            "type": "string",
            "required": False,
            "help": "sender number in E.164 (or set TWILIO_MESSAGING_SERVICE_SID)",
        },
        "TWILIO_MESSAGING_SERVICE_SID": {
            "type": "string",
            "required": False,
            "help": "MGxxxxxxxx…, instead of TWILIO_FROM",
        },
        "TWILIO_API_BASE": {
            "type": "string",
            "required": False,
            "default": TWILIO_API,
            "help": "for Twilio-compatible gateways",
        },
        "TWILIO_RATE": {
            "type": "float",
            "required": False,
            "default": DEFAULT_RATE,
            "help": "messages per second from the sender number (TWILIO_FROM), kept across every worker; "
            "as many go at once as one second allows; 0 for no limit (a Messaging Service paces itself)",
        },
        "TWILIO_TIMEOUT": {"type": "float", "required": False, "default": 30, "help": "seconds per API call"},
        "SMS_DEFAULT_REGION": {
            "type": "string",
            "required": False,
            "help": "country (e.g. US) assumed for numbers without +<country code>",
        },
        "SMS_HELP_TEXT": {"type": "string", "required": False, "help": "the reply to HELP"},
    }

    def __init__(self, config=None):
        super().__init__(config)
        self._client: Client | None = None

    @classmethod
    def preview_facts(cls, rendered: Mapping[str, str]) -> list[tuple[str, str]]:
        """The text's encoding (GSM-7 or UCS-2), its length in that encoding and the segments it takes."""
        counted = segments(rendered.get("txt", ""))
        unit = "septets" if counted.encoding == "GSM-7" else "UTF-16 units"
        return [
            ("Encoding", counted.encoding),
            ("Length", f"{counted.units} {unit}"),
            ("Segments", str(counted.number)),
        ]

    @classmethod
    def check_settings(cls, settings):
        if not (settings.get("TWILIO_ACCOUNT_SID") or settings.get("TWILIO_AUTH_TOKEN")):
            return  # SMS not set up on this instance; sends say so
        for key in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
            if not settings.get(key):
                raise SettingError(
                    key, "is required once Twilio is configured (both the account SID and the auth token)"
                )
        if not (settings.get("TWILIO_FROM") or settings.get("TWILIO_MESSAGING_SERVICE_SID")):
            raise SettingError("TWILIO_FROM", "set a sender number, or NUDGE_TWILIO_MESSAGING_SERVICE_SID")
        rate = settings.get("TWILIO_RATE")
        if rate is not None and not (0 <= float(rate) <= 10000):
            raise SettingError("TWILIO_RATE", f"must be between 0 (no limit) and 10000 messages per second, not {rate}")
        if settings.get("SMS_DEFAULT_REGION") and not phonenumbers.country_code_for_region(
            str(settings["SMS_DEFAULT_REGION"]).upper()
        ):
            raise SettingError(
                "SMS_DEFAULT_REGION", f"unknown country {settings['SMS_DEFAULT_REGION']!r}; use e.g. US or DE"
            )

    def diagnose(self, *, in_use: bool) -> list[Check]:
        """Whether Twilio is configured, which matters once a rule sends SMS."""
        if self.config.get("TWILIO_ACCOUNT_SID") and self.config.get("TWILIO_AUTH_TOKEN"):
            return [Check("sms: Twilio", "ok", "configured")]
        if in_use:
            return [
                Check(
                    "sms: Twilio",
                    "error",
                    "active rules send SMS but Twilio is not configured; set "
                    "NUDGE_TWILIO_ACCOUNT_SID, NUDGE_TWILIO_AUTH_TOKEN and NUDGE_TWILIO_FROM",
                )
            ]
        return [Check("sms: Twilio", "ok", "not configured (no active rule sends SMS)")]

    def test_connection(self) -> Check:
        """Fetch the configured account from Twilio's API: its answer (the account's status, an error) is the report."""
        try:
            client = self._connect()
        except ChannelError as exc:
            return Check("sms: connection", "error", exc.message)
        http = client.http_client
        try:
            account = client.api.v2010.accounts(self.config["TWILIO_ACCOUNT_SID"]).fetch()
        except (TwilioRestException, TwilioServiceException) as exc:
            return Check("sms: connection", "error", classify(exc.status, exc.code, _twilio_text(exc)).message)
        except requests.RequestException as exc:
            return Check("sms: connection", "error", network_error(exc, http.api_base).message)
        finally:
            http.close()
        status = "ok" if account.status == "active" else "error"
        name = f" ({account.friendly_name})" if account.friendly_name else ""
        return Check("sms: connection", status, f"{http.api_base} answered: account{name} is {account.status}")

    def validate_address(self, address: str) -> str:
        return normalise(address, self.config.get("SMS_DEFAULT_REGION"))

    @classmethod
    def address_time_zones(cls, address, settings):
        """The zones of the number's area (one for +1 201, several for a mobile number of a wide country)."""
        from phonenumbers import timezone

        try:
            parsed = phonenumbers.parse(normalise(address, settings.get("SMS_DEFAULT_REGION")))
        except ValueError:
            return ()
        return tuple(name for name in timezone.time_zones_for_number(parsed) if name != "Etc/Unknown")

    def address_forms(self, address: str) -> tuple[str, ...]:
        return tuple(stored_forms(address))

    def same_address(self, stored: str, address: str) -> bool:
        # a national form is read in the number's own country, whatever NUDGE_SMS_DEFAULT_REGION says
        try:
            return normalise(stored, region_of(address)) == address
        except ValueError:
            return False

    # -- connection ---------------------------------------------------------
    def _connect(self) -> Client:
        sid, token = self.config.get("TWILIO_ACCOUNT_SID"), self.config.get("TWILIO_AUTH_TOKEN")
        if not sid or not token:
            raise ChannelError(
                "SMS over Twilio is not configured: set NUDGE_TWILIO_ACCOUNT_SID and NUDGE_TWILIO_AUTH_TOKEN"
            )
        if not (self.config.get("TWILIO_FROM") or self.config.get("TWILIO_MESSAGING_SERVICE_SID")):
            raise ChannelError(
                "SMS over Twilio has no sender: set NUDGE_TWILIO_FROM or NUDGE_TWILIO_MESSAGING_SERVICE_SID"
            )
        http = GatewayHttpClient(
            str(self.config.get("TWILIO_API_BASE") or TWILIO_API),
            timeout=float(self.config.get("TWILIO_TIMEOUT") or 30),
        )
        return Client(sid, token, http_client=http)

    @contextlib.contextmanager
    def batch(self) -> Iterator[SmsChannel]:
        self._client = self._connect()
        try:
            yield self
        finally:
            client, self._client = self._client, None
            client.http_client.close()

    # -- sending ------------------------------------------------------------
    def rate_limit(self, message: OutboundMessage) -> RateLimit | None:
        """Twilio's rate per sender number (``TWILIO_RATE``); none for a Messaging Service without a number."""
        sender = self.config.get("TWILIO_FROM")
        rate = self.config.get("TWILIO_RATE", DEFAULT_RATE)
        rate = DEFAULT_RATE if rate is None else float(rate)
        if not sender or rate <= 0:
            return None
        return RateLimit(key=str(sender), per_second=rate, burst=max(1, int(rate)))

    def send(self, message: OutboundMessage) -> SendResult:
        if self._client is None:
            with self.batch():
                return self.send(message)
        try:
            to = self.validate_address(message.to)
        except ValueError as exc:
            raise ChannelError(f"cannot send SMS: {exc}", permanent=True, suppress="invalid_address") from None
        params: dict[str, Any] = {
            "to": to,
            "body": message.text,
            "status_callback": str(self.config.get("BASE_URL", "")).rstrip("/") + STATUS_PATH,
        }
        if self.config.get("TWILIO_MESSAGING_SERVICE_SID"):
            params["messaging_service_sid"] = self.config["TWILIO_MESSAGING_SERVICE_SID"]
        if self.config.get("TWILIO_FROM"):
            params["from_"] = self.config["TWILIO_FROM"]
        http = self._client.http_client
        try:
            created = self._client.messages.create(**params)
        except (TwilioRestException, TwilioServiceException) as exc:
            error = classify(exc.status, exc.code, _twilio_text(exc), retry_after(http.last_headers))
            if exc.code == UNSUBSCRIBED:
                record_provider_opt_out(to)
            raise error from None
        except requests.RequestException as exc:
            raise network_error(exc, http.api_base) from None
        except ValueError:  # a 2xx whose body is not Twilio's JSON: it may well have been accepted
            raise ChannelError(
                f"{http.api_base} answered with something other than Twilio JSON; the message may have been sent",
                ambiguous=True,
            ) from None
        return SendResult(provider_id=created.sid, status="sent")


class GatewayHttpClient(TwilioHttpClient):
    """twilio's own HTTP client (one pooled ``requests`` session) aimed at ``TWILIO_API_BASE``.

    It also keeps the last response's headers, which twilio's exceptions drop (``Retry-After``).
    """

    def __init__(self, api_base: str, timeout: float):
        super().__init__(pool_connections=True, timeout=timeout)
        self.api_base = api_base.rstrip("/")
        self.last_headers: Mapping[str, str] = {}

    def request(self, method, url, *args, **kwargs):
        self.last_headers = {}
        response = super().request(method, rebase(url, self.api_base), *args, **kwargs)
        self.last_headers = response.headers or {}  # requests' case-insensitive mapping
        return response

    def close(self) -> None:
        if self.session is not None:
            self.session.close()


def rebase(url: str, api_base: str) -> str:
    """Move a ``https://api.twilio.com/…`` URL onto *api_base*, keeping its path and query."""
    if api_base == TWILIO_API:
        return url
    parts, base = urlsplit(url), urlsplit(api_base)
    return urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + parts.path, parts.query, ""))


def classify(status: int, code: int | None, text: str, retry_after: float | None = None) -> ChannelError:
    """Turn a Twilio API error into a :class:`ChannelError` the engine can act on."""
    what = f"Twilio answered {status}" + (f" (error {code})" if code and code != status else "") + f": {text}"
    if code == UNSUBSCRIBED:
        return ChannelError(
            what + "; the recipient has opted out by replying STOP", permanent=True, suppress="unsubscribed"
        )
    if code in INVALID_NUMBERS:
        return ChannelError(what, permanent=True, suppress="invalid_address")
    if status == 429 or code == TOO_MANY_REQUESTS:
        return ChannelError(what, retry_after=retry_after)
    if status >= 500:
        return ChannelError(what, retry_after=retry_after)
    if status == 401:  # fixable by the operator; the messages can then still go
        return ChannelError(what + "; check NUDGE_TWILIO_ACCOUNT_SID and NUDGE_TWILIO_AUTH_TOKEN")
    return ChannelError(what, permanent=True)


def network_error(exc: requests.RequestException, api_base: str) -> ChannelError:
    """Classify a transport failure by whether Twilio may have received the request."""
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)
    if isinstance(exc, requests.ConnectTimeout) or isinstance(reason, (NewConnectionError, ConnectTimeoutError)):
        return ChannelError(f"cannot connect to {api_base}: {reason or exc}")
    if isinstance(exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)):
        return ChannelError(
            f"the connection to {api_base} failed after the request was sent ({type(exc).__name__}); "
            "Twilio may have accepted the message",
            ambiguous=True,
        )
    return ChannelError(f"request to {api_base} failed before it was sent: {exc}")


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date, at most 6 h), if there is one."""
    value = headers.get("Retry-After")
    try:
        return float(Retry().parse_retry_after(value)) if value else None
    except InvalidHeader:
        return None


def _twilio_text(exc: TwilioRestException | TwilioServiceException) -> str:
    text = getattr(exc, "msg", None) or getattr(exc, "detail", None) or getattr(exc, "title", None) or ""
    return str(text).removeprefix("Unable to create record: ")
