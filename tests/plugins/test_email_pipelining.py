"""Sending to an SMTP server that offers PIPELINING (RFC 2920): MAIL FROM, RCPT TO and DATA go in one write, and the
refusals, retries and ambiguous drops come out as they do one command at a time; the next batch is claimed and
rendered while a batch is on the wire. The server here is a raw socket server, so the test sees the commands as
they arrived: it answers a MAIL FROM only once the RCPT TO and DATA after it are in, as a pipelining server may."""

from __future__ import annotations

import socketserver
import threading
import time

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.app import create_app
from server.db import READ_ONLY, get_db, get_session
from server.engine import outbox
from server.engine.outbox import deliver
from server.models import Message

from ..helpers import pending_emails
from ..servers import free_port
from . import POLL


class PipeliningSmtp(socketserver.ThreadingTCPServer):
    """Offers PIPELINING; answers each envelope only after its three commands; keeps each message's bytes.

    ``rcpt_replies``: address -> the RCPT TO reply (default 250); ``data_after_refusal``: the DATA reply when no
    recipient was taken; ``drop_after_content``/``drop_after_envelope``: addresses whose connection is cut after
    their content or after their envelope; ``hold``: while set, each content's reply waits for ``release``.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.groups: list[list[bytes]] = []
        self.rcpt_replies: dict[str, bytes] = {}
        self.data_after_refusal = b"554 5.5.1 no valid recipients"
        self.drop_after_content: set[str] = set()
        self.drop_after_envelope: set[str] = set()
        self.hold = False
        self.timeout_setting = 5  # seconds the client waits for an answer (SMTP_URL's timeout)
        self.release = threading.Event()
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", free_port()), _Session)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.server_address[1]}?timeout={self.timeout_setting}"

    def contents(self) -> int:
        with self.lock:
            return len(self.received) + sum(1 for group in self.groups if group[-1] == b"held")


class _Session(socketserver.StreamRequestHandler):
    server: PipeliningSmtp

    def reply(self, *lines: bytes) -> None:
        self.wfile.write(b"".join(line + b"\r\n" for line in lines))

    def handle(self) -> None:
        server = self.server
        self.reply(b"220 pipe ESMTP")
        while line := self.rfile.readline():
            verb = line[:4].lower()
            if verb == b"ehlo":
                self.reply(b"250-pipe", b"250-8BITMIME", b"250 PIPELINING")
            elif verb == b"mail":  # the group's RCPT TO and DATA must be here before any answer
                rcpt, data = self.rfile.readline(), self.rfile.readline()
                group = [line, rcpt, data]  # this session's: another may append its own meanwhile
                with server.lock:
                    server.groups.append(group)
                to = rcpt.split(b"<", 1)[1].split(b">", 1)[0].decode()
                refusal = server.rcpt_replies.get(to)
                if to in server.drop_after_envelope:
                    return
                if refusal is not None:
                    self.reply(b"250 ok", refusal, server.data_after_refusal)
                    if server.data_after_refusal.startswith(b"354"):
                        ended = self.rfile.readline()
                        with server.lock:
                            group.append(ended)
                        self.reply(b"554 5.5.1 nothing to deliver")
                    continue
                self.reply(b"250 ok", b"250 ok", b"354 go on")
                content = []
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    content.append(chunk[1:] if chunk.startswith(b".") else chunk)
                if to in server.drop_after_content:
                    return
                if server.hold:
                    with server.lock:
                        group.append(b"held")
                    server.release.wait(30)
                with server.lock:
                    server.received.append((to, b"".join(content)))
                self.reply(b"250 accepted")
            elif verb == b"quit":
                self.reply(b"221 bye")
                return
            else:  # RSET, NOOP
                self.reply(b"250 ok")


@pytest.fixture
def pipelining():
    server = PipeliningSmtp()
    threading.Thread(target=server.serve_forever, args=(POLL,), daemon=True).start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def _app(config, server: PipeliningSmtp, **settings):
    return create_app({**config, "SMTP_URL": server.url, "POSTAL_ADDRESS": "1 Main St", **settings})


def _send(config, server: PipeliningSmtp, addresses: list[str], **settings) -> dict[str, tuple[str, str | None]]:
    """Deliver a pending email to each of *addresses*; their rows' (status, error) by address."""
    app = _app(config, server, **settings)
    try:
        with app.app_context():
            session = get_session()
            ids = pending_emails(session, addresses)
            deliver(session, app, ids)
            rows = session.execute(select(Message.id, Message.status, Message.error).where(Message.id.in_(ids)))
            by_id = {row.id: (row.status, row.error) for row in rows}
            return {address: by_id[i] for address, i in zip(addresses, ids, strict=True)}
    finally:
        app.extensions["nudge.queue"].close()
        app.extensions["nudge.db"].dispose()


def test_the_envelope_goes_in_one_group_and_every_message_arrives_once(config, pipelining):
    addresses = [f"r{i}@example.com" for i in range(6)]
    outcome = _send(config, pipelining, addresses, SMTP_CONNECTIONS=2)
    assert set(outcome.values()) == {("sent", None)}
    assert sorted(to for to, _ in pipelining.received) == sorted(addresses)  # each once
    for group in pipelining.groups:
        assert [command[:9].lower() for command in group] == [b"mail from", b"rcpt to:<", b"data\r\n"]
    body = dict(pipelining.received)["r0@example.com"]
    assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in body
    assert body.count(b"\r\nTo: r0@example.com\r\n") == 1


def test_a_line_starting_with_a_dot_arrives_whole(config, pipelining):
    app = _app(config, pipelining)
    try:
        with app.app_context():
            from server.engine.render import save_template

            session = get_session()
            save_template(session, "email", "dots", {"subject": "Dots", "txt": "first\n.hidden?\n..two\n.\nend\n"})
            session.commit()
            ids = pending_emails(session, ["d@example.com"], template="dots")
            assert deliver(session, app, ids) == 1
    finally:
        app.extensions["nudge.queue"].close()
        app.extensions["nudge.db"].dispose()
    [(_to, body)] = pipelining.received
    assert b"\r\n.hidden?\r\n..two\r\n.\r\nend\r\n" in body


@pytest.mark.parametrize("data_reply", [b"554 5.5.1 no valid recipients", b"354 go on"])
def test_a_refused_recipient_fails_that_message_only(config, pipelining, data_reply):
    pipelining.rcpt_replies["gone@example.com"] = b"550 5.1.1 no such user"
    pipelining.data_after_refusal = data_reply
    outcome = _send(config, pipelining, ["a@example.com", "gone@example.com", "b@example.com"], SMTP_CONNECTIONS=1)
    status, error = outcome["gone@example.com"]
    assert status == "failed" and error is not None and "550 at RCPT TO" in error
    assert outcome["a@example.com"] == outcome["b@example.com"] == ("sent", None)
    assert sorted(to for to, _ in pipelining.received) == ["a@example.com", "b@example.com"]
    if data_reply.startswith(b"354"):  # DATA was taken with nobody to deliver to: ended empty, nothing delivered
        [group] = [g for g in pipelining.groups if b"gone@" in g[1]]
        assert group[3] == b".\r\n"


def test_a_temporary_refusal_is_retried(config, pipelining):
    pipelining.rcpt_replies["busy@example.com"] = b"450 4.2.1 try later"
    outcome = _send(config, pipelining, ["busy@example.com"])
    status, error = outcome["busy@example.com"]
    assert status == "pending" and error is not None and "450 at RCPT TO" in error
    assert pipelining.received == []


def test_a_drop_after_the_envelope_is_retried_and_after_the_content_is_unknown(config, pipelining):
    pipelining.drop_after_envelope.add("early@example.com")
    pipelining.drop_after_content.add("late@example.com")
    outcome = _send(config, pipelining, ["early@example.com", "late@example.com"], SMTP_CONNECTIONS=1)
    assert outcome["early@example.com"][0] == "pending"  # the content never left: sent again later
    status, error = outcome["late@example.com"]
    assert status == "unknown" and error is not None and "may have the message" in error


def test_the_next_batch_is_claimed_and_rendered_while_one_is_on_the_wire(config, pipelining, monkeypatch):
    monkeypatch.setattr(outbox, "CLAIM_BATCH", 2)
    pipelining.hold = True  # the first two messages stay on the wire until released
    pipelining.timeout_setting = 60
    app = _app(config, pipelining, SMTP_CONNECTIONS=2)
    try:
        with app.app_context():
            ids = pending_emails(get_session(), [f"r{i}@example.com" for i in range(4)])
        sent: list[int] = []
        failed: list[BaseException] = []

        def worker() -> None:
            with app.app_context():
                try:
                    sent.append(deliver(get_session(), app, ids))
                except BaseException as exc:  # reported by the assertions below, not lost in the thread
                    failed.append(exc)

        thread = threading.Thread(target=worker)
        thread.start()
        deadline = time.monotonic() + 60
        claimed: list[tuple[str, object]] = []
        # reads only (BEGIN DEFERRED on SQLite): the test must not take the write lock the sender needs
        with Session(get_db(app).engine.execution_options(**{READ_ONLY: True})) as session:
            while time.monotonic() < deadline and not failed:
                session.rollback()  # a fresh read each time
                rows = session.execute(select(Message.status, Message.sending_at).where(Message.id.in_(ids[2:])))
                claimed = [tuple(row) for row in rows]
                if pipelining.contents() == 2 and claimed == [("sending", None)] * 2:
                    break
                time.sleep(0.05)
        assert not failed, failed
        assert pipelining.contents() == 2 and pipelining.received == []  # the first batch is still on the wire
        assert claimed == [("sending", None)] * 2  # and the next is claimed already, not yet handed over
        pipelining.hold = False
        pipelining.release.set()
        thread.join(30)
        assert sent == [4]
        assert sorted(to for to, _ in pipelining.received) == [f"r{i}@example.com" for i in range(4)]
    finally:
        pipelining.release.set()
        app.extensions["nudge.queue"].close()
        app.extensions["nudge.db"].dispose()
