"""Tracking on the wire: the SMTP server receives the mail with its links rewritten and the open pixel, the test
follows them over real HTTP (waitress), and rules react to a person's click, never to a machine's."""

from __future__ import annotations

import http.client
import re
from email import message_from_bytes, policy
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from server.app import create_app
from server.config import ConfigError
from server.consent import current_consent
from server.db import get_session
from server.engine.render import save_template
from server.models import Contact, Enrolment, Event, Rule

from ..helpers import api_key, load_rules, post_event, run_worker
from ..ui.conftest import live_server, ui_port  # noqa: F401  (fixtures: the app under waitress on a real port)

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
SCANNER = "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))"
HTML = (
    "<html><head><style>a { color: #c00 }</style></head><body>\n"
    '<!-- <a href="https://commented.example/">old</a> -->\n'
    '<p>Hello {{ contact.first_name }}, <a href="https://shop.example/spring?a=1&amp;b=2" class="btn">'
    "see the offer</a></p>\n"
    '<p><a href="https://shop.example/sizes">sizes</a> <a href="https://shop.example/stores">stores</a></p>\n'
    '<p><a data-nudge-track="off" href="https://shop.example/private">your account</a>\n'
    '<a href="mailto:help@shop.example">mail us</a> <a href="#top">top</a>\n'
    '<a href="{{ unsubscribe_url }}">leave this list</a></p>\n'
    "</body></html>"
)
TXT = "Hello,\nsee https://shop.example/spring?a=1&b=2.\n"
RULES = (
    'rule "Offer"\nwhen form.submitted then\n  send email offer\nend\n'
    'rule "Clicked"\nwhen email.clicked then\n  send email thanks\nend\n'
)


@pytest.fixture
def base(request) -> str:
    """The base URL of the app served by waitress on a real port (every link in the mail points there)."""
    return request.getfixturevalue("live_server")


@pytest.fixture
def settings() -> dict:
    return {}


@pytest.fixture
def config(config, ui_port, settings):  # noqa: F811  (ui_port: the imported fixture)
    """Links point at the live server."""
    return {**config, "BASE_URL": f"http://127.0.0.1:{ui_port}", **settings}


def send_offer(app, smtp_server) -> bytes:
    """The rule sends one marketing email; the raw bytes the SMTP server received."""
    with app.app_context():
        session = get_session()
        save_template(session, "email", "offer", {"subject": "Spring", "html": HTML, "txt": TXT})
        save_template(session, "email", "thanks", {"subject": "Thanks for looking", "txt": "Thanks!"})
        session.commit()
    load_rules(app, RULES)
    before = len(smtp_server.raw)
    assert post_event(app.test_client(), api_key(app), email="ana@example.com").status_code == 202
    run_worker(app)
    smtp_server.wait_for(before + 1)
    return smtp_server.raw[before]


def parts(raw: bytes) -> tuple[str, str]:
    msg = message_from_bytes(raw, policy=policy.default)
    html = msg.get_body(("html",)).get_content()
    text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
    return html, text


def hrefs(html: str) -> list[str]:
    return re.findall(r'<a [^>]*href="([^"]*)"', html)


def fetch(url: str, agent: str, method: str = "GET", body: str | None = None) -> http.client.HTTPResponse:
    """One real HTTP request, redirects not followed."""
    parts_ = urlsplit(url)
    conn = http.client.HTTPConnection(parts_.hostname, parts_.port, timeout=30)
    headers = {"User-Agent": agent}
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, parts_.path + (f"?{parts_.query}" if parts_.query else ""), body=body, headers=headers)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def events_named(app, name: str) -> list[Event]:
    with app.app_context():
        session = get_session()
        rows = list(session.scalars(select(Event).where(Event.name == name).order_by(Event.id)))
        session.expunge_all()
        return rows


def clicked_rule_enrolments(app) -> int:
    with app.app_context():
        session = get_session()
        return session.scalar(
            select(func.count(Enrolment.id)).join(Rule, Rule.id == Enrolment.rule_id).where(Rule.name == "Clicked")
        )


def test_links_are_rewritten_and_a_person_s_click_fires_the_rule_a_scanner_s_does_not(app, base, smtp_server, clock):
    raw = send_offer(app, smtp_server)
    html, text = parts(raw)
    links = hrefs(html)
    tracked = [h for h in links if h.startswith(f"{base}/c/")]
    assert len(tracked) == 3  # the three shop links; nothing else
    assert 'href="https://shop.example/private"' in html and "data-nudge-track" not in html  # opted out
    assert "mailto:help@shop.example" in links and "#top" in links
    unsubscribe = [h for h in links if h.startswith(f"{base}/u/")]
    assert len(unsubscribe) == 2  # the template's own and the footer's, never wrapped
    assert '<!-- <a href="https://commented.example/">old</a> -->' in html  # comments are left alone
    assert "<style>a { color: #c00 }</style>" in html and 'class="btn">see the offer</a>' in html
    [pixel] = re.findall(r'<img src="([^"]+)" width="1" height="1"', html)
    assert pixel.startswith(f"{base}/o/") and pixel.endswith(".gif")
    assert html.index(pixel) < html.lower().index("</body>")
    assert "https://shop.example/spring?a=1&b=2." in text and "/c/" not in text  # text links: off by default
    list_unsubscribe = message_from_bytes(raw, policy=policy.default)["List-Unsubscribe"]
    assert f"<{unsubscribe[0]}>" in list_unsubscribe and "/c/" not in list_unsubscribe

    # a security scanner follows the link on delivery: redirected all the same, recorded as a machine's
    response = fetch(tracked[0], SCANNER)
    assert response.status == 302 and response.getheader("Location") == "https://shop.example/spring?a=1&b=2"
    run_worker(app)
    [machine] = events_named(app, "email.clicked")
    assert machine.props["machine"] is True and machine.props["machine_reason"] == "user-agent:barracuda"
    assert clicked_rule_enrolments(app) == 0 and len(smtp_server.raw) == 1

    # later, the person opens the mail and clicks
    clock.advance(120)
    opened = fetch(pixel, FIREFOX)
    assert opened.status == 200 and opened.getheader("Content-Type") == "image/gif"
    response = fetch(tracked[0], FIREFOX)
    assert response.status == 302 and response.getheader("Location") == "https://shop.example/spring?a=1&b=2"
    run_worker(app)
    [_, human] = events_named(app, "email.clicked")
    assert human.props["machine"] is False and human.props["url"] == "https://shop.example/spring?a=1&b=2"
    [open_event] = events_named(app, "email.opened")
    assert open_event.props["machine"] is False
    assert clicked_rule_enrolments(app) == 1
    smtp_server.wait_for(2)
    assert message_from_bytes(smtp_server.raw[1], policy=policy.default)["Subject"] == "Thanks for looking"


@pytest.mark.parametrize("settings", [{"MACHINE_CLICK_BURST_SECONDS": 120.0}])
def test_a_scanner_clicking_every_link_at_once_is_a_machine(app, base, smtp_server, clock, settings):
    html, _ = parts(send_offer(app, smtp_server))
    tracked = [h for h in hrefs(html) if h.startswith(f"{base}/c/")]
    clock.advance(120)  # well after sending: only the burst gives the scanner away (it sends a browser's agent)
    for link in tracked:
        assert fetch(link, FIREFOX).status == 302
    run_worker(app)
    clicks = events_named(app, "email.clicked")
    assert len(clicks) == 3
    assert [(c.props["machine"], c.props.get("machine_reason")) for c in clicks] == [(True, "click-burst")] * 3
    assert clicked_rule_enrolments(app) == 0 and len(smtp_server.raw) == 1


@pytest.mark.parametrize(
    "settings",
    [{"UNTRACKED_CHANNELS": "email"}, {"TRACK_OPENS": False, "TRACK_CLICKS": False}],
)
def test_tracking_turned_off_leaves_the_mail_as_rendered(app, base, smtp_server, settings):
    html, _ = parts(send_offer(app, smtp_server))
    assert not [h for h in hrefs(html) if "/c/" in h] and "/o/" not in html
    assert 'href="https://shop.example/spring?a=1&amp;b=2"' in html


@pytest.mark.parametrize("settings", [{"TRACK_TEXT_LINKS": True, "TRACK_OPENS": False}])
def test_text_links_are_wrapped_when_the_setting_says_so(app, base, smtp_server, settings):
    html, text = parts(send_offer(app, smtp_server))
    [link, unsubscribe] = re.findall(r"http://[^\s.]+(?:\.[^\s.]+)*", text)
    assert link.startswith(f"{base}/c/") and unsubscribe.startswith(f"{base}/u/")  # the footer's
    assert f"see {link}.\n" in text  # the sentence's full stop stays outside the link
    response = fetch(link, FIREFOX)
    assert response.status == 302 and response.getheader("Location") == "https://shop.example/spring?a=1&b=2"
    assert "/o/" not in html and len([h for h in hrefs(html) if "/c/" in h]) == 3


def test_a_scanner_following_the_unsubscribe_link_unsubscribes_nobody(app, base, smtp_server):
    raw = send_offer(app, smtp_server)
    html, _ = parts(raw)
    [link, *_] = [h for h in hrefs(html) if h.startswith(f"{base}/u/")]
    for method in ("GET", "HEAD"):
        assert fetch(link, SCANNER, method).status == 200
    with app.app_context():
        session = get_session()
        contact_id = session.scalar(select(Contact.id))
        assert current_consent(session, contact_id, "email") is None
    response = fetch(link, SCANNER, "POST", "List-Unsubscribe=One-Click")  # RFC 8058: the provider's POST
    assert response.status == 200
    with app.app_context():
        assert current_consent(get_session(), contact_id, "email") == "revoked"


def test_transactional_mail_is_not_tracked_by_default(app, base, smtp_server):
    from .test_forms import make_form

    make_form(app)
    client = app.test_client()
    response = client.post("/f/newsletter", data={"email": "nia@example.com", "consent": "yes"})
    assert response.status_code == 303
    run_worker(app)
    smtp_server.wait_for(1)
    html, _ = parts(smtp_server.raw[0])
    [confirm] = hrefs(html)
    assert confirm.startswith(f"{base}/f/confirm/") and "/o/" not in html


@pytest.mark.parametrize("settings", [{"TRACK_TRANSACTIONAL": True}])
def test_transactional_mail_is_tracked_when_the_setting_says_so(app, base, smtp_server, settings):
    from .test_forms import make_form

    make_form(app)
    response = app.test_client().post("/f/newsletter", data={"email": "nia@example.com", "consent": "yes"})
    assert response.status_code == 303
    run_worker(app)
    smtp_server.wait_for(1)
    html, _ = parts(smtp_server.raw[0])
    [confirm] = hrefs(html)
    assert confirm.startswith(f"{base}/f/confirm/")  # Nudge's own link: never wrapped
    assert re.search(r'<img src="http://127\.0\.0\.1:\d+/o/[^"]+\.gif"', html)


@pytest.mark.parametrize(
    "bad,message",
    [
        (
            {"UNTRACKED_CHANNELS": "email,emial"},
            "NUDGE_UNTRACKED_CHANNELS: names no installed channel: emial; installed: email, sms, webhook",
        ),
        ({"MACHINE_CLICK_BURST": "1"}, "NUDGE_MACHINE_CLICK_BURST: must be at least 2 links, got 1"),
    ],
)
def test_bad_tracking_settings_are_refused_naming_the_setting(config, bad, message):
    with pytest.raises(ConfigError) as caught:
        create_app({**config, **bad})
    assert str(caught.value) == message
