"""Telling a person's open or click from a machine's: proxies that prefetch, scanners that follow every link.

:func:`classify` looks at one request (method, user agent, address, time since sending); the click redirect
adds the burst test (:func:`burst`): a scanner follows every link of a message within a second or two, a
person does not. Decisions, and why (docs/tracking.md has the table):

- Apple Mail Privacy Protection fetches every image of every message on delivery, from Apple's network
  (17.0.0.0/8) with the bare agent ``Mozilla/5.0``: machine. It says nothing about the person reading.
- Gmail's image proxy (``… (via ggpht.com GoogleImageProxy)``) fetches the pixel when the person opens the
  message in Gmail, then serves it from its cache: a **human** open (as Braze, SparkPost and WURFL count it),
  flagged ``proxy: "google-image-proxy"`` because later opens of the same message are not seen. Gmail's
  prefetch (an Edge 12 agent ending in a second ``Mozilla/5.0``) and content sampling are machines.
- A mail client fetching images itself (Outlook desktop, Outlook for iOS and Android, Thunderbird) is a person
  opening; the same agent on a *click* is the client probing the link (a person's click opens a browser).
- Security gateways (Microsoft Defender Safe Links, Proofpoint, Mimecast, Barracuda) mostly send ordinary
  browser agents: they are caught by their vendor name where they send one, by Exchange Online Protection's
  published networks, by the seconds since sending, and by the burst of clicks.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["APPLE_NETWORK", "GOOGLE_IMAGE_PROXY", "MACHINE_AGENTS", "Verdict", "classify"]

#: user agents of security scanners, link checkers and preview fetchers (substring match, any case)
MACHINE_AGENTS = re.compile(
    r"bot\b|crawler|spider|preview|scanner|headless|python-|curl/|wget/|go-http-client|java/|okhttp|"
    r"proofpoint|mimecast|barracuda|symantec|messagelabs|trendmicro|trend micro|forcepoint|sophos|fortiguard|"
    r"ironport|cisco|safelinks|ms-office|msoffice|existence discovery|yahoomailproxy|appengine-google|"
    r"gmail-content-sampling|facebookexternalhit|slackbot|whatsapp|skypeuripreview|linkedinbot|twitterbot",
    re.IGNORECASE,
)
#: mail clients loading images as their reader opens a message: a person's open, but never a person's click
MAIL_CLIENTS = re.compile(r"microsoft office/|microsoft outlook|outlook-ios|outlook-android|thunderbird", re.I)
#: Gmail's image proxy: fetches when the person opens (see the module's notes)
GOOGLE_IMAGE_PROXY = re.compile(r"googleimageproxy", re.IGNORECASE)
#: Gmail's prefetch on delivery, while the recipient has Gmail open: an Edge 12 agent with a trailing Mozilla/5.0
GMAIL_PREFETCH = re.compile(r"Edge/12\.246 Mozilla/5\.0$")
#: Apple's own network: Mail Privacy Protection fetches every image on delivery from here
APPLE_NETWORK = ipaddress.ip_network("17.0.0.0/8")
#: Exchange Online Protection (spf.protection.outlook.com): Defender's delivery-time scans come from here
MICROSOFT_SCANNERS = tuple(
    ipaddress.ip_network(n)
    for n in ("40.92.0.0/15", "40.107.0.0/16", "52.100.0.0/15", "52.102.0.0/16", "52.103.0.0/17", "104.47.0.0/17")
)


@dataclass(frozen=True)
class Verdict:
    """What :func:`classify` found: why the hit is a machine's (None: a person's), and the proxy it came through."""

    reason: str | None
    proxy: str | None = None


def classify(
    *,
    purpose: str,
    method: str,
    agent: str,
    address: str | None,
    sent_at: datetime | None,
    now: datetime,
    seconds: float,
) -> Verdict:
    """Whether one open (*purpose* ``open``) or click (``click``) request is a machine's, and through which proxy.

    :param agent: the ``User-Agent`` header ("" when absent).
    :param address: the client's IP address, when known.
    :param sent_at: when the message went out (the link's signing time when the message is gone).
    :param seconds: a hit this soon after sending is a machine's (``MACHINE_SECONDS``).
    :return: the verdict; its reason is None for a person.
    """
    proxy = "google-image-proxy" if purpose == "open" and GOOGLE_IMAGE_PROXY.search(agent) else None
    reason = _reason(purpose, method, agent.strip(), address)
    if reason is None and sent_at is not None and now - sent_at < timedelta(seconds=seconds):
        reason = "seconds-after-send"
    return Verdict(reason, proxy)


def _reason(purpose: str, method: str, agent: str, address: str | None) -> str | None:
    if method == "HEAD":
        return "head-request"
    if not agent:
        return "no-user-agent"
    ip = _ip(address)
    if (ip is not None and ip in APPLE_NETWORK) or agent == "Mozilla/5.0":
        return "apple-privacy-proxy"
    if GMAIL_PREFETCH.search(agent):
        return "gmail-prefetch"
    match = MACHINE_AGENTS.search(agent)
    if match:
        return f"user-agent:{match.group(0).strip().lower()}"
    if purpose == "click" and MAIL_CLIENTS.search(agent):
        return "mail-client-probe"
    if ip is not None and any(ip in network for network in MICROSOFT_SCANNERS):
        return "microsoft-scanner-network"
    return None


def _ip(address: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address or "")
    except ValueError:
        return None
