"""Marketing email as the receiving SMTP server sees it: raw ASCII List headers, List-Id, Feedback-ID, DKIM over
the exact bytes, the mailto unsubscribe processed end to end, and no marketing mail without a postal address."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from urllib.parse import unquote, urlsplit

import dkim
import pytest
from sqlalchemy import select

from server.app import create_app
from server.config import ConfigError
from server.consent import current_consent
from server.db import get_session
from server.engine.render import save_template
from server.models import Consent, Contact, Event, Message

from ..helpers import api_key, load_rules, post_event, run_worker
from ..web.test_forms import make_form

BASE_URL = "https://marketing-automation.acme-industries.example"  # 52 characters, as in real life
DOMAIN = "newsletter.acme-industries-international.example"
MAIL_FROM = f"Äcme Industries Newsletter <news@{DOMAIN}>"
MAILTO = f"unsubscribe@{DOMAIN}"
SECRET = "inbound-secret-0123456789"
SUBJECT = "Frühlingsangebote für Sie – nur diese Woche, solange der Vorrat reicht"
RULE = 'rule "Spring offer"\nwhen form.submitted then\n  send email offer\nend\n'


def raw_fields(raw: bytes) -> list[tuple[str, str]]:
    """The header fields exactly as sent: (name, value with its folds kept as CRLF + whitespace)."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")  # fails on any byte that is not ASCII
    fields: list[list[str]] = []
    for line in head.split("\r\n"):
        if line[:1] in (" ", "\t"):
            fields[-1][1] += "\r\n" + line
        else:
            name, _, value = line.partition(":")
            fields.append([name, value.removeprefix(" ")])
    return [(name, value) for name, value in fields]


def raw_field(raw: bytes, name: str) -> str:
    [value] = [value for field, value in raw_fields(raw) if field.lower() == name.lower()]
    return value


@pytest.fixture
def make_app(config, dkim_key):
    """create_app with a realistic https base URL, DKIM, a processed mailto and a Feedback-ID sender id."""
    apps = []

    def make(**settings):
        app = create_app(
            {
                **config,
                "BASE_URL": BASE_URL,
                "MAIL_FROM": MAIL_FROM,
                "DKIM_SELECTOR": "nudge",
                "DKIM_PRIVATE_KEY_FILE": str(dkim_key[0]),
                "UNSUBSCRIBE_MAILTO": MAILTO,
                "EMAIL_WEBHOOK_SECRET": SECRET,
                "FEEDBACK_ID": "acme-news",
                **settings,
            }
        )
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["nudge.queue"].close()
        app.extensions["nudge.db"].dispose()


@pytest.fixture
def wire_app(make_app):
    return make_app()


def deliver_offer(app, email="ana@example.com") -> None:
    """The rule sends one marketing email (a worker runs the queue dry)."""
    with app.app_context():
        session = get_session()
        save_template(
            session,
            "email",
            "offer",
            {"subject": SUBJECT, "txt": "Hallo {{ contact.email }}", "html": "<html><body><p>Hallo</p></body></html>"},
        )
        session.commit()
    load_rules(app, RULE)
    post_event(app.test_client(), api_key(app), email=email)
    run_worker(app)


def send_offer(app, smtp_server, email="ana@example.com") -> bytes:
    """The marketing email as the SMTP server received it."""
    before = len(smtp_server.raw)
    deliver_offer(app, email)
    smtp_server.wait_for(before + 1)
    return smtp_server.raw[before]


def test_list_unsubscribe_is_raw_ascii_folded_only_at_the_comma_and_dkim_verifies(wire_app, smtp_server, dkim_key):
    _key_file, dnsfunc, looked_up = dkim_key
    raw = send_offer(wire_app, smtp_server)
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    value = raw_field(raw, "List-Unsubscribe")
    assert "=?" not in value
    https, mailto = value.split(",\r\n ")  # the one fold, at the comma; nothing folded inside a URI
    assert re.fullmatch(re.escape(f"<{BASE_URL}/u/") + r"[A-Za-z0-9._-]+>", https)
    token = https[len(BASE_URL) + 4 : -1]
    assert mailto == f"<mailto:{MAILTO}?subject={token}>"
    assert raw_field(raw, "List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"
    # the other headers: non-ASCII is RFC 2047 where it belongs (Subject, the From name), and nowhere else
    msg = message_from_bytes(raw, policy=policy.default)
    assert "=?utf-8?" in raw_field(raw, "Subject") and msg["Subject"] == SUBJECT
    assert raw_field(raw, "From").endswith(f"<news@{DOMAIN}>") and str(msg["From"]) == MAIL_FROM
    assert re.fullmatch(r"<[0-9a-f]{40}@" + re.escape(DOMAIN) + ">", raw_field(raw, "Message-ID"))
    list_id = raw_field(raw, "List-Id")
    assert (
        list_id.endswith(f" <news.{DOMAIN}>") and str(msg["List-Id"]) == f"Äcme Industries Newsletter <news.{DOMAIN}>"
    )
    assert raw_field(raw, "Feedback-ID") == "Spring-offer:offer:marketing:acme-news"
    # DKIM over exactly these bytes, covering every List header
    assert dkim.verify(raw, dnsfunc=dnsfunc)
    assert looked_up == [f"nudge._domainkey.{DOMAIN}.".encode()]
    signed = re.search(r"h=([^;]+)", raw_field(raw, "DKIM-Signature").replace("\r\n", "")).group(1)
    assert {"list-unsubscribe", "list-unsubscribe-post", "list-id", "feedback-id"} <= {
        h.strip().lower() for h in signed.split(":")
    }
    assert not dkim.verify(raw.replace(token.encode(), token[:-2].encode() + b"xx", 1), dnsfunc=dnsfunc)


def test_the_https_uri_on_the_wire_is_the_one_click_unsubscribe(wire_app, smtp_server):
    raw = send_offer(wire_app, smtp_server)
    url = raw_field(raw, "List-Unsubscribe").split(",")[0].strip("<>")
    response = wire_app.test_client().post(
        urlsplit(url).path, data={"List-Unsubscribe": "One-Click"}, base_url=BASE_URL
    )
    assert response.status_code == 200
    with wire_app.app_context():
        session = get_session()
        contact = session.scalar(select(Contact))
        assert current_consent(session, contact.id, "email") == "revoked"


def _post_mail(app, body: bytes, secret: str = SECRET, content_type: str = "message/rfc822", **kw):
    return app.test_client().post(
        "/hooks/email/unsubscribe",
        data=body,
        content_type=content_type,
        headers={"Authorization": f"Bearer {secret}"},
        **kw,
    )


def test_mailto_unsubscribe_is_processed_end_to_end_like_the_one_click(wire_app, smtp_server):
    raw = send_offer(wire_app, smtp_server)
    mailto = raw_field(raw, "List-Unsubscribe").split(",")[1].strip().strip("<>")
    address, _, query = mailto.removeprefix("mailto:").partition("?")
    subject = unquote(query.removeprefix("subject="))
    # what a mailbox provider sends to that address, piped whole to the endpoint by the MTA
    mail = (
        f"From: ana@example.com\r\nTo: {address}\r\nSubject: {subject}\r\nMessage-ID: <x@mail.example>\r\n"
        "\r\nThis message was automatically generated by Gmail.\r\n"
    ).encode()
    response = _post_mail(wire_app, mail)
    assert response.status_code == 200 and response.json == {"unsubscribed": True, "channel": "email"}
    assert _post_mail(wire_app, mail).status_code == 200  # a repeated request changes nothing
    with wire_app.app_context():
        session = get_session()
        [sent] = session.scalars(select(Message)).all()
        [consent] = session.scalars(select(Consent)).all()
        assert (consent.status, consent.source) == ("revoked", "mailto")
        [event] = session.scalars(select(Event).where(Event.name == "email.unsubscribed")).all()
        assert event.props == {"channel": "email", "source": "mailto", "message": sent.key}
    # the next marketing email to her is not sent
    post_event(wire_app.test_client(), api_key(wire_app), email="ana@example.com")
    run_worker(wire_app)
    assert len(smtp_server.raw) == 1


def test_inbound_mail_providers_may_post_the_subject_as_a_form_or_json(wire_app, smtp_server):
    raw = send_offer(wire_app, smtp_server, email="ben@example.com")
    token = raw_field(raw, "List-Unsubscribe").split("subject=")[1].rstrip(">")
    client = wire_app.test_client()
    answer = client.post(f"/hooks/email/unsubscribe?token={SECRET}", data={"subject": f"Re: {token}"})
    assert answer.status_code == 200 and answer.json["unsubscribed"] is True
    answer = client.post(
        "/hooks/email/unsubscribe", json={"Subject": token}, headers={"Authorization": f"Bearer {SECRET}"}
    )
    assert answer.status_code == 200


def test_the_mailto_endpoint_refuses_strangers_and_mail_without_a_token(wire_app, smtp_server):
    raw = send_offer(wire_app, smtp_server)
    token = raw_field(raw, "List-Unsubscribe").split("subject=")[1].rstrip(">")
    mail = f"From: a@example.com\r\nSubject: {token}\r\n\r\nbye\r\n".encode()
    assert _post_mail(wire_app, mail, secret="wrong").status_code == 401
    forged = _post_mail(wire_app, mail.replace(token.encode(), token[:-3].encode() + b"abc"))
    assert forged.status_code == 422 and "token" in forged.json["detail"]
    assert _post_mail(wire_app, b"From: a@example.com\r\nSubject: please remove me\r\n\r\n").status_code == 422
    with wire_app.app_context():
        assert get_session().scalars(select(Consent)).all() == []


def test_without_a_processed_mailto_none_is_advertised(app, smtp_server):
    raw = send_offer(app, smtp_server)
    assert "mailto:" not in raw_field(raw, "List-Unsubscribe")
    answer = app.test_client().post(
        "/hooks/email/unsubscribe", data=b"Subject: x\r\n\r\n", content_type="message/rfc822"
    )
    assert answer.status_code == 404 and "NUDGE_UNSUBSCRIBE_MAILTO" in answer.json["detail"]


def test_a_mailto_without_the_endpoint_secret_is_a_start_up_error(start_up):
    with pytest.raises(ConfigError, match=r"^NUDGE_UNSUBSCRIBE_MAILTO: .*NUDGE_EMAIL_WEBHOOK_SECRET"):
        start_up(UNSUBSCRIBE_MAILTO=MAILTO)


def test_list_id_setting_and_its_validation(start_up, make_app, smtp_server):
    with pytest.raises(ConfigError, match=r"^NUDGE_LIST_ID: "):
        start_up(LIST_ID="Acme <not a list id>")
    with pytest.raises(ConfigError, match=r"^NUDGE_FEEDBACK_ID: "):
        start_up(FEEDBACK_ID="acme news!")
    raw = send_offer(make_app(LIST_ID="Acme, Inc. offers <offers.acme.example>"), smtp_server)
    assert raw_field(raw, "List-Id") == '"Acme, Inc. offers" <offers.acme.example>'


def test_marketing_email_without_a_postal_address_is_refused_naming_the_setting(make_app, smtp_server):
    app = make_app(POSTAL_ADDRESS="")
    deliver_offer(app)
    assert smtp_server.raw == []
    with app.app_context():
        [message] = get_session().scalars(select(Message)).all()
        assert message.status == "failed" and "NUDGE_POSTAL_ADDRESS" in message.error
    # transactional mail is not marketing: the double opt-in confirmation still goes out
    make_form(app)
    app.test_client().post("/f/newsletter", data={"email": "new@example.com", "consent": "yes"})
    run_worker(app)
    [confirmation] = smtp_server.wait_for(1)
    assert confirmation["Subject"] == "Please confirm your subscription"
    fields = dict(raw_fields(smtp_server.raw[0]))
    assert fields["Feedback-ID"] == "form-newsletter:confirm_subscription:transactional:acme-news"
    assert "List-Unsubscribe" not in fields and "List-Id" not in fields
