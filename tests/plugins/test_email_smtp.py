"""The email channel against a real SMTP server (aiosmtpd): sessions, TLS, headers, DKIM, errors, bounces."""

from __future__ import annotations

import hashlib
import json
import re
import ssl
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlalchemy import select

from plugins.email_smtp.channel import EmailChannel, message_id
from plugins.email_smtp.settings import parse_smtp_url
from server.app import create_app
from server.config import ConfigError
from server.db import get_session
from server.engine.ingest import upsert_contact
from server.models import Event, Message, MessageStatusChange, Suppression
from server.plugins import PluginManager
from server.sdk import ChannelError, OutboundMessage, address_hash

from ..servers import free_port


class Handler:
    def __init__(self) -> None:
        self.sessions: list[tuple[str, int]] = []  # one entry per TCP connection that said EHLO
        self.raw: list[bytes] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.authenticated: list[bool] = []
        self.tls: list[bool] = []
        self.reject_rcpt: str | None = None
        self.reject_data: str | None = None
        self.lock = threading.Lock()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        with self.lock:
            if session.peer not in self.sessions:
                self.sessions.append(session.peer)
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.reject_rcpt:
            return self.reject_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.reject_data:
            return self.reject_data
        with self.lock:
            self.raw.append(envelope.original_content)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.authenticated.append(bool(session.authenticated))
            self.tls.append(server.transport.get_extra_info("ssl_object") is not None)
        return "250 Message accepted"

    @property
    def messages(self) -> list[EmailMessage]:
        return [message_from_bytes(raw, policy=policy.default) for raw in self.raw]


class SmtpPeer:
    """aiosmtpd on a free port; with *cert* it offers (and requires) STARTTLS, with *login* it requires AUTH."""

    def __init__(
        self, cert: tuple[Path, Path] | None = None, login: tuple[str, str] | None = None, implicit_tls: bool = False
    ) -> None:
        self.port = free_port()
        self.handler = Handler()
        kwargs: dict = {}
        if cert is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(cert[0]), str(cert[1]))
            kwargs.update(ssl_context=context) if implicit_tls else kwargs.update(
                tls_context=context, require_starttls=True
            )
        if login is not None:
            user, password = login[0].encode(), login[1].encode()

            def authenticator(server, session, envelope, mechanism, auth_data):
                return AuthResult(success=auth_data.login == user and auth_data.password == password, handled=False)

            kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=cert is not None)
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **kwargs)

    def url(self, scheme: str = "smtp", userinfo: str = "", query: str = "") -> str:
        query = "&".join(q for q in (query, "timeout=10") if q)
        return f"{scheme}://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}?{query}"

    def __enter__(self) -> SmtpPeer:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A fresh self-signed certificate for 127.0.0.1 / localhost (it is its own CA): (cert.pem, key.pem)."""
    from . import self_signed_cert as make

    return make(folder, "localhost", "127.0.0.1")


# -- the tests -------------------------------------------------------------------------------
MAIL_FROM = "Acme News <news@acme.example>"
UNSUB = "https://nudge.example/u/tok?c=1&x=2"


def channel_for(peer: SmtpPeer, **settings) -> EmailChannel:
    url = settings.pop("SMTP_URL", peer.url())
    return EmailChannel(
        {"SMTP_URL": url, "MAIL_FROM": MAIL_FROM, "POSTAL_ADDRESS": "Acme Ltd, 1 Main Street", **settings}
    )


def outbound(key: str = "k1", to: str = "ana@example.com", **kw) -> OutboundMessage:
    values = {
        "subject": "Spring offers",
        "text": "Hello Ana",
        "html": "<html><body><p>Hello Ana</p></body></html>",
        "unsubscribe_url": UNSUB,
        **kw,
    }
    return OutboundMessage(key=key, channel="email", template="offer", to=to, **values)


@pytest.fixture
def peer():
    with SmtpPeer() as server:
        yield server


def test_a_batch_sends_many_messages_over_one_smtp_session(peer):
    channel = channel_for(peer)
    with channel.batch():
        results = [channel.send(outbound(f"k{i}", f"c{i}@example.com")) for i in range(6)]
    assert len(peer.handler.raw) == 6
    assert len(peer.handler.sessions) == 1
    assert [r.provider_id for r in results] == [m["Message-ID"] for m in peer.handler.messages]
    with channel.batch():  # the closed session is not reused; a new batch opens a new one
        channel.send(outbound("k9"))
    assert len(peer.handler.sessions) == 2


def test_a_pooled_session_that_went_stale_is_replaced_once(peer):
    channel = channel_for(peer)
    with channel.batch():
        channel.send(outbound("before"))
        peer.controller.stop()  # the server restarts; the kept connection is dead
        peer.controller = Controller(peer.handler, hostname="127.0.0.1", port=peer.port)
        peer.controller.start()
        channel.send(outbound("after"))
    assert len(peer.handler.raw) == 2 and len(peer.handler.sessions) == 2


def test_sends_outside_a_batch_each_open_and_close_their_session(peer):
    channel = channel_for(peer)
    channel.send(outbound("a"))
    channel.send(outbound("b"))
    assert len(peer.handler.sessions) == 2 and len(peer.handler.raw) == 2


def test_starttls_and_auth_with_a_trusted_self_signed_certificate(tmp_path):
    cert, key = self_signed_cert(tmp_path)
    with SmtpPeer(cert=(cert, key), login=("mailer", "s3cret pass")) as server:
        url = server.url(userinfo="mailer:s3cret%20pass", query="tls=starttls")
        channel_for(server, SMTP_URL=url, SMTP_CA_FILE=str(cert)).send(outbound())
        assert server.handler.tls == [True] and server.handler.authenticated == [True]


def test_tls_from_the_start_with_an_smtps_url(tmp_path):
    cert, key = self_signed_cert(tmp_path)
    with SmtpPeer(cert=(cert, key), implicit_tls=True) as server:
        channel_for(server, SMTP_URL=server.url(scheme="smtps"), SMTP_CA_FILE=str(cert)).send(outbound())
        assert server.handler.tls == [True] and len(server.handler.raw) == 1


def test_certificates_are_verified_by_default(tmp_path):
    cert, key = self_signed_cert(tmp_path)
    with SmtpPeer(cert=(cert, key), login=("mailer", "pw")) as server:
        channel = channel_for(server, SMTP_URL=server.url(userinfo="mailer:pw", query="tls=starttls"))
        with pytest.raises(ChannelError) as caught:
            channel.send(outbound())
        assert "not trusted" in caught.value.message and "NUDGE_SMTP_CA_FILE" in caught.value.message
        assert not caught.value.permanent and server.handler.raw == []


def test_a_wrong_password_is_a_retryable_error_naming_the_setting(tmp_path):
    cert, key = self_signed_cert(tmp_path)
    with SmtpPeer(cert=(cert, key), login=("mailer", "right")) as server:
        channel = channel_for(
            server, SMTP_URL=server.url(userinfo="mailer:wrong", query="tls=starttls"), SMTP_CA_FILE=str(cert)
        )
        with pytest.raises(ChannelError, match=r"NUDGE_SMTP_URL") as caught:
            channel.send(outbound())
        assert not caught.value.permanent and server.handler.raw == []


def test_message_is_multipart_text_and_html_with_a_stable_message_id(peer):
    channel = channel_for(peer)
    first = channel.send(outbound("row-1"))
    again = channel.send(outbound("row-1"))  # a retry of the same outbox row
    other = channel.send(outbound("row-2"))
    assert first.provider_id == again.provider_id != other.provider_id
    msg = peer.handler.messages[0]
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["Message-ID"] == first.provider_id and msg["Message-ID"].endswith("@acme.example>")
    assert "row-1" not in msg["Message-ID"]
    assert msg.get_body(("plain",)).get_content().startswith("Hello Ana")
    assert "<p>Hello Ana</p>" in msg.get_body(("html",)).get_content()
    assert peer.handler.envelopes[0] == ("news@acme.example", ["ana@example.com"])


def test_marketing_email_carries_one_click_unsubscribe_postal_address_and_visible_link(peer):
    channel = channel_for(peer, POSTAL_ADDRESS="Acme Ltd\n1 <Main> Street\nSpringfield")
    channel.send(outbound("m1"))
    msg = peer.handler.messages[0]
    assert msg["List-Unsubscribe"] == f"<{UNSUB}>"  # no mailto: nothing would process it
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = msg.get_body(("plain",)).get_content()
    assert f"Unsubscribe: {UNSUB}" in text and "1 <Main> Street" in text
    html = msg.get_body(("html",)).get_content()
    assert '<a href="https://nudge.example/u/tok?c=1&amp;x=2">Unsubscribe</a>' in html
    assert "1 &lt;Main&gt; Street" in html and html.rstrip().endswith("</body></html>")


def test_mailto_unsubscribe_address_can_be_configured(peer):
    channel_for(peer, UNSUBSCRIBE_MAILTO="leave@lists.acme.example").send(outbound())
    # the subject is the signed token of the one-click URL (its last path segment)
    assert (
        "<mailto:leave@lists.acme.example?subject=tok%3Fc%3D1%26x%3D2>" in peer.handler.messages[0]["List-Unsubscribe"]
    )


def test_marketing_email_without_unsubscribe_url_is_refused_permanently(peer):
    with pytest.raises(ChannelError, match=r"unsubscribe") as caught:
        channel_for(peer).send(outbound(unsubscribe_url=None))
    assert caught.value.permanent and peer.handler.raw == []


def test_transactional_email_has_no_list_headers(peer):
    channel_for(peer).send(outbound(unsubscribe_url=None, marketing=False))
    msg = peer.handler.messages[0]
    assert msg["List-Unsubscribe"] is None and "Unsubscribe" not in msg.get_body(("plain",)).get_content()


@pytest.mark.parametrize(
    "field, header",
    [
        ({"subject": "Hi\r\nBcc: victim@example.com"}, "Subject"),
        ({"to": "ana@example.com\nBcc: victim@example.com"}, "To"),
        ({"headers": {"X-Campaign": "spring\r\nBcc: x@example.com"}}, "X-Campaign"),
        ({"unsubscribe_url": "https://nudge.example/u\r\nBcc: x@example.com"}, "List-Unsubscribe"),
        ({"subject": "Hi\0there"}, "Subject"),
        ({"to": "ana@example.com\r"}, "To"),
        ({"unsubscribe_url": "https://nudge.example/u\0"}, "List-Unsubscribe"),
    ],
)
def test_line_breaks_in_header_values_are_refused(peer, field, header):
    with pytest.raises(ChannelError, match=f"header {header} ") as caught:
        channel_for(peer).send(outbound(**field))
    assert caught.value.permanent and peer.handler.raw == []


def test_dkim_signature_covers_both_list_headers_and_verifies(peer, dkim_key):
    import dkim

    key_file, dnsfunc, looked_up = dkim_key
    EmailChannel.check_settings(
        {"MAIL_FROM": MAIL_FROM, "DKIM_SELECTOR": "nudge", "DKIM_PRIVATE_KEY_FILE": str(key_file)}
    )
    channel_for(peer, DKIM_SELECTOR="nudge", DKIM_PRIVATE_KEY_FILE=str(key_file)).send(outbound())
    raw = peer.handler.raw[0]
    assert dkim.verify(raw, dnsfunc=dnsfunc)
    assert looked_up == [b"nudge._domainkey.acme.example."]
    signature = peer.handler.messages[0]["DKIM-Signature"]
    signed = [h.strip().lower() for h in re.search(r"h=([^;]+)", signature.replace("\r\n", "")).group(1).split(":")]
    assert "list-unsubscribe" in signed and "list-unsubscribe-post" in signed
    tampered = raw.replace(
        b"List-Unsubscribe: <https://nudge.example/u/", b"List-Unsubscribe: <https://evil.example/u/"
    )
    assert tampered != raw and not dkim.verify(tampered, dnsfunc=dnsfunc)


def test_rejected_recipient_5xx_is_a_hard_bounce_and_the_session_goes_on(peer):
    channel = channel_for(peer)
    with channel.batch():
        peer.handler.reject_rcpt = "550 5.1.1 no such user"
        with pytest.raises(ChannelError) as caught:
            channel.send(outbound("gone"))
        peer.handler.reject_rcpt = None
        channel.send(outbound("next"))
    assert caught.value.permanent and caught.value.suppress == "bounced" and "550" in caught.value.message
    assert len(peer.handler.raw) == 1 and len(peer.handler.sessions) == 1


def test_4xx_is_retryable_without_suppression(peer):
    peer.handler.reject_rcpt = "451 4.3.0 try again later"
    with pytest.raises(ChannelError) as caught:
        channel_for(peer).send(outbound())
    assert not caught.value.permanent and caught.value.suppress is None and not caught.value.ambiguous


def test_content_rejected_at_data_is_permanent_but_keeps_the_address(peer):
    peer.handler.reject_data = "554 5.7.1 message refused as spam"
    with pytest.raises(ChannelError) as caught:
        channel_for(peer).send(outbound())
    assert caught.value.permanent and caught.value.suppress is None


def test_unreachable_server_is_a_retryable_error():
    url = f"smtp://127.0.0.1:{free_port()}"
    channel = EmailChannel({"SMTP_URL": url, "MAIL_FROM": MAIL_FROM, "POSTAL_ADDRESS": "1 Main St"})
    with pytest.raises(ChannelError, match=r"cannot connect") as caught:
        channel.send(outbound())
    assert not caught.value.permanent


# -- settings, checked at start-up -------------------------------------------------------------
def _validate(**settings):
    pm = PluginManager()
    pm.load({}, default_plugins=("plugins.email_smtp",), use_entry_points=False)
    pm.validate_config({"SMTP_URL": "smtp://127.0.0.1:25", "MAIL_FROM": MAIL_FROM, **settings})
    return pm


def test_dkim_selector_without_key_file_is_a_start_up_error_naming_the_variable():
    with pytest.raises(ConfigError) as caught:
        _validate(DKIM_SELECTOR="nudge")
    assert str(caught.value).startswith("NUDGE_DKIM_PRIVATE_KEY_FILE: ")


def test_missing_ca_file_is_a_start_up_error(tmp_path):
    with pytest.raises(ConfigError, match=r"^NUDGE_SMTP_CA_FILE: no readable file"):
        _validate(SMTP_CA_FILE=str(tmp_path / "nope.pem"))


def test_mail_from_without_domain_is_a_start_up_error():
    with pytest.raises(ConfigError, match=r"^NUDGE_MAIL_FROM: "):
        _validate(MAIL_FROM="nobody")


def test_valid_settings_are_kept_for_the_channel(tmp_path):
    pm = _validate(POSTAL_ADDRESS="1 Main St", EMAIL_WEBHOOK_SECRET="s")
    assert pm.settings["email"]["POSTAL_ADDRESS"] == "1 Main St"
    assert pm.channel("email", {"SMTP_URL": "smtp://127.0.0.1:25", "MAIL_FROM": MAIL_FROM}).config["POSTAL_ADDRESS"]


def test_create_app_refuses_a_bad_channel_setting(tmp_path, redis_server):
    # SQLite: create_app stops before handing back the app, so nothing could close a server connection
    config = {
        "HOME": str(tmp_path),
        "REDIS_URL": redis_server.url,
        "SECRET_KEY": "test-secret-key-0123456789",
        "LOAD_ENTRY_POINTS": False,
        "DKIM_PRIVATE_KEY_FILE": __file__,
    }
    with pytest.raises(ConfigError, match=r"^NUDGE_DKIM_SELECTOR: "):
        create_app(config)


# -- the bounce and complaint endpoint -----------------------------------------------------------
SECRET = "bounce-secret-0123"


@pytest.fixture
def email_app(config):
    app = create_app({**config, "EMAIL_WEBHOOK_SECRET": SECRET, "MAIL_FROM": MAIL_FROM})
    yield app
    app.extensions["nudge.queue"].close()
    app.extensions["nudge.db"].dispose()


def _contact(app, email):
    with app.app_context():
        session = get_session()
        contact = upsert_contact(session, {"email": email})
        session.commit()
        return contact.id


def _state(app, email):
    with app.app_context():
        session = get_session()
        suppression = session.scalar(
            select(Suppression).where(Suppression.address_hash == address_hash(email, app.config["SECRET_KEY"]))
        )
        events = [(e.name, e.props) for e in session.scalars(select(Event).order_by(Event.id))]
        return suppression, events


def _post(app, body, content_type="application/json", secret=SECRET):
    headers = {"Content-Type": content_type}
    if secret:
        headers["Authorization"] = f"Bearer {secret}"
    return app.test_client().post("/hooks/email/bounce", data=body, headers=headers)


@pytest.mark.parametrize("body", ["[" * 2500, '{"type": "bounce", "email": "\\ud800@example.com"}'])
def test_json_that_nests_too_deep_or_is_not_text_is_a_422(email_app, body):
    response = _post(email_app, body)
    assert response.status_code == 422 and response.mimetype == "application/problem+json"


def test_json_hard_bounce_suppresses_the_address_and_raises_email_bounced(email_app):
    _contact(email_app, "gone@example.com")
    response = _post(email_app, json.dumps({"type": "bounce", "email": "Gone@Example.com", "detail": "5.1.1"}))
    assert response.status_code == 200, response.json
    suppression, events = _state(email_app, "gone@example.com")
    assert suppression.channel == "email" and suppression.reason == "bounced"
    assert (
        suppression.address_hash
        == hashlib.sha256((email_app.config["SECRET_KEY"] + "\0gone@example.com").encode()).hexdigest()
    )
    assert [name for name, _ in events] == ["email.bounced"]


def test_soft_bounce_raises_the_event_without_suppressing(email_app):
    _contact(email_app, "full@example.com")
    _post(email_app, json.dumps([{"type": "bounce", "email": "full@example.com", "permanent": False}]))
    suppression, events = _state(email_app, "full@example.com")
    assert suppression is None and [name for name, _ in events] == ["email.bounced"]


@pytest.mark.parametrize("permanent", ["false", 0, None])
def test_a_bounce_whose_permanent_is_not_a_boolean_is_refused_not_taken_for_hard(email_app, permanent):
    """ "false" as text read as true: a soft bounce suppressed the address for good."""
    _contact(email_app, "full@example.com")
    body = json.dumps([{"type": "bounce", "email": "full@example.com", "permanent": permanent}])
    response = _post(email_app, body)
    assert response.status_code == 422 and '"permanent" must be true or false' in response.json["detail"]
    assert _state(email_app, "full@example.com") == (None, [])


def test_the_bounce_endpoint_needs_the_shared_secret(email_app):
    body = json.dumps({"type": "bounce", "email": "x@example.com"})
    assert _post(email_app, body, secret=None).status_code == 401
    assert _post(email_app, body, secret="wrong").status_code == 401
    assert _state(email_app, "x@example.com")[0] is None


def test_the_bounce_endpoint_is_off_without_a_secret(app):
    response = app.test_client().post("/hooks/email/bounce", json={"type": "bounce", "email": "x@example.com"})
    assert response.status_code == 404 and "NUDGE_EMAIL_WEBHOOK_SECRET" in response.json["detail"]


def test_unreadable_reports_are_refused_with_a_reason(email_app):
    response = _post(email_app, b"Subject: hi\r\n\r\nhello", content_type="message/rfc822")
    assert response.status_code == 422 and "multipart/report" in response.json["detail"]


def _sent_message(app, email, key="journey:1:welcome"):
    """An outbox row as the engine leaves it after a send, with the Message-ID as provider id."""
    contact_id = _contact(app, email)
    with app.app_context():
        session = get_session()
        provider_id = message_id(key, "acme.example")
        session.add(
            Message(
                key=key,
                contact_id=contact_id,
                channel="email",
                template="welcome",
                status="sent",
                provider_id=provider_id,
            )
        )
        session.commit()
        return provider_id


def _report(report_type: str, parts: list[tuple[str, str]]) -> bytes:
    """A multipart/report as a mail server or a feedback loop sends it: a human part, then *parts*."""
    body = "".join(f"--B\r\nContent-Type: {kind}\r\n\r\n{content}\r\n" for kind, content in parts)
    return (
        "From: reports@mx.example\r\nTo: news@acme.example\r\nSubject: report\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type={report_type}; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nA report about a message you sent.\r\n"
        f"{body}--B--\r\n"
    ).encode()


def test_rfc3464_dsn_is_matched_to_the_sent_message(email_app):
    provider_id = _sent_message(email_app, "nobody@example.com")
    raw = _report(
        "delivery-status",
        [
            (
                "message/delivery-status",
                "Reporting-MTA: dns; mx.example\r\n\r\n"
                "Final-Recipient: rfc822; nobody@example.com\r\nAction: failed\r\n"
                "Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\r\n",
            ),
            ("text/rfc822-headers", f"Message-ID: {provider_id}\r\nTo: nobody@example.com\r\nSubject: Welcome\r\n"),
        ],
    )
    response = _post(email_app, raw, content_type="message/rfc822")
    assert response.status_code == 200, response.json
    suppression, events = _state(email_app, "nobody@example.com")
    assert suppression.reason == "bounced"
    [(name, props)] = events
    assert name == "email.bounced" and props["message"] == "journey:1:welcome" and props["status"] == "5.1.1"
    with email_app.app_context():
        change = get_session().scalar(select(MessageStatusChange))
        assert change.status == "bounced" and "user unknown" in change.detail


def test_arf_complaint_suppresses_and_raises_email_complained(email_app):
    provider_id = _sent_message(email_app, "angry@example.com", key="journey:2:offer")
    raw = _report(
        "feedback-report",
        [
            ("message/feedback-report", "Feedback-Type: abuse\r\nUser-Agent: isp-fbl/1.0\r\nVersion: 1\r\n"),
            (
                "message/rfc822",
                f"From: news@acme.example\r\nTo: Angry <angry@example.com>\r\nMessage-ID: {provider_id}"
                "\r\nSubject: Spring offers\r\n\r\nbody\r\n",
            ),
        ],
    )
    response = _post(email_app, raw, content_type="message/rfc822")
    assert response.status_code == 200, response.json
    suppression, events = _state(email_app, "angry@example.com")
    assert suppression.reason == "complained"
    assert [name for name, _ in events] == ["email.complained"] and events[0][1]["message"] == "journey:2:offer"


def test_a_uri_too_long_for_one_line_stays_whole_and_unencoded(peer):
    long_url = "https://nudge.example/u/" + "A1b2-C3d4_" * 40  # 424 characters: no fold can make it fit 78
    channel_for(peer).send(outbound("short", unsubscribe_url=long_url))
    channel_for(peer, UNSUBSCRIBE_MAILTO="leave@acme.example").send(outbound("both", unsubscribe_url=long_url))
    alone, both = (raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n") for raw in peer.handler.raw)
    assert f"List-Unsubscribe: <{long_url}>".encode() in alone
    at = both.index(f"List-Unsubscribe: <{long_url}>,".encode())  # folded at the comma only
    assert both[at + 1] == f" <mailto:leave@acme.example?subject={long_url.rsplit('/', 1)[1]}>".encode()
    assert all(len(line) <= 998 and b"=?" not in line for line in alone + both)


def test_smtp_url_parts():
    s = parse_smtp_url("smtp://user%40x:p%3Ass@mail.example.com:587?tls=starttls")
    assert (s.host, s.port, s.username, s.password, s.tls) == ("mail.example.com", 587, "user@x", "p:ss", "starttls")
    assert "p:ss" not in repr(s)
    assert parse_smtp_url("smtps://mail.example.com").port == 465
    assert parse_smtp_url("smtp://mail.example.com").tls == "none"


@pytest.mark.parametrize(
    "value, needle",
    [
        ("smtp://host?tls=maybe", "tls must be none, starttls or ssl"),
        ("smtp://", "no host given"),
        ("http://mail.example.com", "scheme must be"),
    ],
)
def test_a_bad_smtp_url_stops_nudge_naming_the_variable(tmp_path, value, needle):
    from server.app import create_app

    with pytest.raises(ConfigError) as info:
        create_app({"HOME": str(tmp_path), "DATABASE_URL": "sqlite://", "SMTP_URL": value})
    assert str(info.value).startswith("NUDGE_SMTP_URL: ") and needle in str(info.value)


def test_nudge_smtp_url_is_read_from_the_environment_with_its_default(tmp_path, monkeypatch):
    from server.app import create_app

    app = create_app({"HOME": str(tmp_path), "DATABASE_URL": "sqlite://"})
    assert app.extensions["nudge.plugins"].channel("email", app.config).smtp.host == "localhost"
    monkeypatch.setenv("NUDGE_SMTP_URL", "smtps://mail.example.com")
    app = create_app({"HOME": str(tmp_path), "DATABASE_URL": "sqlite://"})
    smtp = app.extensions["nudge.plugins"].channel("email", app.config).smtp
    assert (smtp.host, smtp.port, smtp.tls) == ("mail.example.com", 465, "ssl")
