"""The webhook channel: signed JSON POSTs to the endpoints operators configure (``send webhook NAME``)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    InvalidHeader,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util import Retry

from server.sdk import Channel, ChannelError, Endpoint, OutboundMessage, SendResult, SettingError, disable_endpoint
from server.sdk import endpoint as find_endpoint

from . import signing
from .guard import AllowList, Refused, resolve

#: the Standard Webhooks schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h
RETRY_SCHEDULE = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
#: bytes of a response read at most (only a snippet is kept, for the operator)
MAX_RESPONSE = 64 * 1024
USER_AGENT = "Nudge-Webhooks/1"


class WebhookChannel(Channel):
    """POSTs ``message.data`` as JSON to the endpoint named ``message.template``, signed per Standard Webhooks.

    The endpoint is read when sending (so a disabled endpoint or a rotated secret applies to pending
    retries at once); a 410 disables it.
    """

    name = "webhook"
    # calls the endpoint named by the template: nobody's address, no consent, no unsubscribe, not marketing
    endpoints = True
    address_field = None
    consent = None
    unsubscribe = None
    counts_toward_cap = False
    template_parts = ("body",)
    idempotent = True  # receivers de-duplicate by webhook-id (= message.key)
    retry_schedule = RETRY_SCHEDULE
    config_schema = {
        "WEBHOOK_TIMEOUT": {
            "type": "float",
            "required": False,
            "default": 10,
            "help": "seconds to connect, and again to wait for the answer",
        },
        "WEBHOOK_ALLOW": {
            "type": "string",
            "required": False,
            "help": "comma-separated hosts and CIDRs that may be called although private, e.g. 10.0.0.0/8",
        },
        "WEBHOOK_CA_FILE": {
            "type": "file",
            "required": False,
            "help": "PEM bundle to trust for https endpoints instead of the system's (an internal CA)",
        },
    }

    def __init__(self, config=None):
        super().__init__(config)
        self.allow = AllowList.parse(self.config.get("WEBHOOK_ALLOW"))
        timeout = float(self.config.get("WEBHOOK_TIMEOUT") or 10)
        self.timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self.ca_file = self.config.get("WEBHOOK_CA_FILE") or None
        self._pools: dict[tuple[str, str, int, str], urllib3.HTTPConnectionPool] | None = None

    @classmethod
    def check_settings(cls, settings):
        try:
            AllowList.parse(settings.get("WEBHOOK_ALLOW"))
        except ValueError as exc:
            raise SettingError("WEBHOOK_ALLOW", str(exc)) from None
        if settings.get("WEBHOOK_TIMEOUT") is not None and settings["WEBHOOK_TIMEOUT"] <= 0:
            raise SettingError("WEBHOOK_TIMEOUT", "must be more than 0 seconds")

    def validate_address(self, address: str) -> str:
        return address.strip()  # not addressed to a contact: the endpoint is the template

    @contextlib.contextmanager
    def batch(self) -> Iterator[WebhookChannel]:
        self._pools = {}
        try:
            yield self
        finally:
            pools, self._pools = self._pools, None
            for pool in pools.values():
                pool.close()

    # -- sending ------------------------------------------------------------
    def send(self, message: OutboundMessage) -> SendResult:
        if self._pools is None:
            with self.batch():
                return self.send(message)
        endpoint = self._endpoint(message.template)
        body = json.dumps(payload(message), separators=(",", ":"), sort_keys=True, default=str).encode()
        try:
            headers = signing.sign(message.key, int(time.time()), body, endpoint.secrets)
        except ValueError as exc:
            raise ChannelError(
                f"webhook endpoint {endpoint.name!r} has an unusable secret: {exc}", permanent=True
            ) from None
        status, response_headers, snippet = self._post(endpoint, body, headers)
        if 200 <= status < 300:
            return SendResult(provider_id=message.key, status="sent")
        if status == 410:
            disable_endpoint(endpoint.name, f"the endpoint answered 410 Gone at {_now():%Y-%m-%d %H:%M} UTC")
        raise classify(endpoint.name, status, response_headers, snippet)

    def _endpoint(self, name: str) -> Endpoint:
        endpoint = find_endpoint(name)
        if endpoint is None:
            raise ChannelError(f"no webhook endpoint named {name!r}; add it under Settings → Webhooks", permanent=True)
        if endpoint.disabled_at is not None:
            raise ChannelError(
                f"webhook endpoint {name!r} is disabled since {endpoint.disabled_at:%Y-%m-%d %H:%M} UTC "
                f"({endpoint.disabled_reason}); enable it again once it accepts calls",
                permanent=True,
            )
        if not endpoint.secrets:
            raise ChannelError(f"webhook endpoint {name!r} has no signing secret; add a whsec_ secret", permanent=True)
        return endpoint

    def _post(self, endpoint: Endpoint, body: bytes, headers: dict[str, str]) -> tuple[int, Any, bytes]:
        """POST to the endpoint's checked address(es); no redirects, no retries here, bounded time and size."""
        url = urlsplit(endpoint.url)
        try:
            port = url.port or (443 if url.scheme == "https" else 80)
        except ValueError:  # a port that is not a number or out of range
            port = 0
        if url.scheme not in ("http", "https") or not url.hostname or not port:
            raise ChannelError(
                f"webhook endpoint {endpoint.name!r} has no valid http(s) URL: {endpoint.url!r}", permanent=True
            )
        try:
            addresses = resolve(url.hostname, port, self.allow)
        except Refused as exc:
            raise ChannelError(f"webhook endpoint {endpoint.name!r}: {exc}", permanent=True) from None
        except OSError as exc:
            raise ChannelError(f"webhook endpoint {endpoint.name!r}: cannot resolve {url.hostname}: {exc}") from None
        host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
        target = (url.path or "/") + (f"?{url.query}" if url.query else "")
        headers = {
            **headers,
            "Host": host if port == {"http": 80, "https": 443}[url.scheme] else f"{host}:{port}",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        for index, address in enumerate(addresses):
            pool = self._pool(url.scheme, url.hostname, port, address)
            try:
                response = pool.urlopen(
                    "POST",
                    target,
                    body=body,
                    headers=headers,
                    redirect=False,
                    retries=False,
                    timeout=self.timeout,
                    preload_content=False,
                    assert_same_host=False,
                )
            except (NewConnectionError, ConnectTimeoutError) as exc:
                if index + 1 < len(addresses):
                    continue  # never reached this address: the next one may answer
                raise ChannelError(f"cannot connect to webhook endpoint {endpoint.name!r}: {_reason(exc)}") from None
            except SSLError as exc:  # the handshake comes before the request: nothing was sent
                raise ChannelError(
                    f"webhook endpoint {endpoint.name!r}: TLS check of {url.hostname} failed: {_reason(exc)}"
                ) from None
            # below, the request may have arrived: ambiguous, yet safe to retry (receivers de-duplicate by webhook-id)
            except ReadTimeoutError:
                raise ChannelError(
                    f"webhook endpoint {endpoint.name!r} did not answer within "
                    f"{self.timeout.read_timeout:g} s (NUDGE_WEBHOOK_TIMEOUT)",
                    ambiguous=True,
                ) from None
            except (ProtocolError, HTTPError, OSError) as exc:
                raise ChannelError(
                    f"webhook call to {endpoint.name!r} failed: {_reason(exc)}", ambiguous=True
                ) from None
            return response.status, response.headers, _read_capped(response)
        raise AssertionError("resolve() returns at least one address")  # pragma: no cover

    def _pool(self, scheme: str, hostname: str, port: int, address: str) -> urllib3.HTTPConnectionPool:
        """One pool per checked address for the batch: later calls reuse its connection, never re-resolving."""
        assert self._pools is not None
        key = (scheme, hostname, port, address)
        if key not in self._pools:
            if scheme == "https":  # connect to the address, but check the certificate against the name (and send SNI)
                self._pools[key] = urllib3.HTTPSConnectionPool(
                    address,
                    port,
                    maxsize=1,
                    server_hostname=hostname,
                    assert_hostname=hostname,
                    cert_reqs="CERT_REQUIRED",
                    ca_certs=self.ca_file,
                )
            else:
                self._pools[key] = urllib3.HTTPConnectionPool(address, port, maxsize=1)
        return self._pools[key]


def payload(message: OutboundMessage) -> dict[str, Any]:
    """The JSON body: Standard Webhooks' recommended ``{type, timestamp, data}`` envelope around ``message.data``."""
    data = dict(message.data)
    return {
        "type": data.pop("type", None) or "nudge.webhook",
        "timestamp": data.pop("timestamp", None) or _now().isoformat(timespec="seconds"),
        "data": data,
    }


def classify(name: str, status: int, headers: Any, snippet: bytes) -> ChannelError:
    """Turn a non-2xx answer into a :class:`ChannelError`."""
    said = snippet[:200].decode("utf-8", "replace").strip()
    what = f"webhook endpoint {name!r} answered {status}" + (f": {said}" if said else "")
    if 300 <= status < 400:
        return ChannelError(
            f"{what}; redirects are not followed (to {headers.get('Location', '?')}): update the endpoint URL",
            permanent=True,
        )
    if status == 410:
        return ChannelError(f"{what}; the endpoint is gone and has been disabled", permanent=True)
    if status in (408, 429) or status >= 500:
        return ChannelError(what, retry_after=retry_after(headers.get("Retry-After")))
    return ChannelError(what, permanent=True)


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` value (delta-seconds or an HTTP date, at most 6 h)."""
    try:
        return float(Retry().parse_retry_after(value)) if value else None
    except InvalidHeader:
        return None


def _read_capped(response: urllib3.BaseHTTPResponse) -> bytes:
    """Read at most :data:`MAX_RESPONSE` bytes; a longer answer costs its connection, not our memory."""
    try:
        data = response.read(MAX_RESPONSE, decode_content=False)
        if response.read(1, decode_content=False):
            response.close()  # the rest stays unread: the connection cannot be reused
        return data
    except (ProtocolError, ReadTimeoutError, OSError):
        response.close()
        return b""
    finally:
        response.release_conn()


def _now() -> datetime:
    return datetime.now(UTC)


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "reason", None) or exc)
