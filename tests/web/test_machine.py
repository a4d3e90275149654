"""Machine opens and clicks told from people's, as a table of real user agents and networks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from server.web.machine import classify

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(hours=3)
HOME = "203.0.113.7"  # a person's address (documentation range)

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
SAFARI_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 "
    "Safari/605.1.15"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 "
    "Mobile/15E148 Safari/604.1"
)
CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
EDGE = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 "
    "Edg/131.0.0.0"
)
SAMSUNG = (
    "Mozilla/5.0 (Linux; Android 14; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 "
    "Chrome/122.0.0.0 Mobile Safari/537.36"
)
GMAIL_IMAGE_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
GMAIL_PREFETCH = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/42.0.2311.135 "
    "Safari/537.36 Edge/12.246 Mozilla/5.0"
)
GMAIL_SAMPLING = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/42.0.2311.135 "
    "Safari/537.36 Edge/12.246 Gmail-content-sampling"
)
OUTLOOK_DESKTOP = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)"
OFFICE_PROBE = "Mozilla/4.0 (compatible; ms-office; MSOffice 16)"
BING_PREVIEW = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/79.0.3945.74 "
    "Safari/537.36 Edg/79.0.309.43 BingPreview/1.0b"
)
SAFE_LINKS_DETONATION = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/72.0.3626.109 "
    "Safari/537.36"
)

HUMAN_BROWSERS = [CHROME_WINDOWS, SAFARI_MAC, SAFARI_IPHONE, CHROME_ANDROID, FIREFOX_LINUX, EDGE, SAMSUNG]


def verdict(purpose="open", agent=CHROME_WINDOWS, address=HOME, method="GET", sent_at=LONG_AGO):
    return classify(purpose=purpose, method=method, agent=agent, address=address, sent_at=sent_at, now=NOW, seconds=10)


@pytest.mark.parametrize("purpose", ["open", "click"])
@pytest.mark.parametrize("agent", HUMAN_BROWSERS)
def test_people_s_browsers_are_people(agent, purpose):
    found = verdict(purpose, agent)
    assert found.reason is None and found.proxy is None


@pytest.mark.parametrize(
    "purpose,agent,address,reason",
    [
        # Apple Mail Privacy Protection: every image on delivery, from Apple's network, with a bare agent
        ("open", "Mozilla/5.0", "17.58.63.134", "apple-privacy-proxy"),
        ("open", "Mozilla/5.0", "104.28.40.23", "apple-privacy-proxy"),  # relayed: the bare agent gives it away
        ("open", SAFARI_MAC, "17.123.4.5", "apple-privacy-proxy"),
        # Gmail's prefetch while the recipient has Gmail open, and its content sampling
        ("open", GMAIL_PREFETCH, "66.249.84.1", "gmail-prefetch"),
        ("click", GMAIL_SAMPLING, "66.249.84.1", "user-agent:gmail-content-sampling"),
        # Microsoft: Office probing a link, Bing's preview, Defender's delivery-time scans from Exchange Online
        ("click", OFFICE_PROBE, HOME, "user-agent:ms-office"),
        ("click", BING_PREVIEW, "40.77.167.1", "user-agent:preview"),
        ("click", SAFE_LINKS_DETONATION, "40.107.236.52", "microsoft-scanner-network"),
        ("open", SAFE_LINKS_DETONATION, "52.101.8.9", "microsoft-scanner-network"),
        ("click", OUTLOOK_DESKTOP, HOME, "mail-client-probe"),  # a person's click opens a browser
        # security gateways that name themselves
        ("click", "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))", HOME, "user-agent:barracuda"),
        ("click", "Mimecast URL Protect/1.0", HOME, "user-agent:mimecast"),
        ("click", "Proofpoint URL Defense (urldefense.com)", HOME, "user-agent:proofpoint"),
        ("open", "Mozilla/5.0 (compatible; Symantec MessageLabs)", HOME, "user-agent:symantec"),
        # tools, not people
        ("click", "python-requests/2.32.3", HOME, "user-agent:python-"),
        ("click", "curl/8.5.0", HOME, "user-agent:curl/"),
        ("open", "", HOME, "no-user-agent"),
    ],
)
def test_machines_are_machines(purpose, agent, address, reason):
    assert verdict(purpose, agent, address).reason == reason


def test_gmail_s_image_proxy_is_a_person_opening_through_a_proxy():
    found = verdict("open", GMAIL_IMAGE_PROXY, "66.102.8.1")
    assert found.reason is None and found.proxy == "google-image-proxy"


def test_a_mail_client_loading_images_is_a_person_opening():
    assert verdict("open", OUTLOOK_DESKTOP).reason is None
    assert verdict("open", "Outlook-iOS/709.2189947.prod.iphone (3.24.0)").reason is None


def test_timing_and_method():
    assert verdict(sent_at=NOW - timedelta(seconds=3)).reason == "seconds-after-send"
    assert verdict(sent_at=NOW - timedelta(seconds=30)).reason is None
    assert verdict(method="HEAD").reason == "head-request"
    # a proxy hit seconds after sending is a prefetch, whatever the proxy
    assert verdict("open", GMAIL_IMAGE_PROXY, sent_at=NOW - timedelta(seconds=2)).reason == "seconds-after-send"
