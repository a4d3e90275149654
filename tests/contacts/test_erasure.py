"""Erasure leaves nothing readable anywhere, and only a confirmed double opt-in makes an erased address mailable."""

import io
import json
import logging
import re

import pytest
import sqlalchemy as sa

from server.consent import address_hash, suppression_reason
from server.contacts import audit
from server.db import get_db, get_session
from server.logsafe import Redact, configure_logging
from server.models import Consent, Suppression
from server.queue import get_queue

from ..helpers import api_key, load_rules, post_event, run_worker
from ..web.test_forms import make_form

PERSON = {"email": "zelda.quist@example.com", "external_id": "crm-zq-77", "first_name": "Zelda"}
PHONE = "+4930123456"
#: what must not be readable after the erasure, in any table or log line (compared in lower case)
TRACES = ("zelda", "quistorp", "4930123456", "crm-zq-77")
HOOK_SECRET = "bounce-hook-secret"


def _readable(app) -> list[tuple[str, str, str]]:
    """(table, column, trace) for every text or JSON value in the database that holds a trace."""
    engine = get_db(app).engine
    tables = sa.MetaData()
    tables.reflect(bind=engine)
    found = []
    with engine.connect() as conn:
        for table in tables.sorted_tables:
            for row in conn.execute(sa.select(table)):
                for column, value in row._mapping.items():
                    if isinstance(value, (dict, list)):
                        value = json.dumps(value, ensure_ascii=False)
                    if isinstance(value, str):
                        found += [(table.name, column, t) for t in TRACES if t in value.lower()]
    return found


def _captured(caplog) -> str:
    """Every log line of this process, tracebacks included; the test SMTP server's own lines are not Nudge's."""
    out = []
    for record in caplog.records:
        if record.name.startswith("mail.log"):
            continue
        out.append(record.getMessage())
        if record.exc_info:
            out.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(out).lower()


def test_erasure_leaves_nothing_readable_in_any_table_or_log(app, client, runner, smtp_server, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    app.config["EMAIL_WEBHOOK_SECRET"] = HOOK_SECRET
    load_rules(app)
    admin = {"Authorization": f"Bearer {api_key(app, 'admin')}"}
    email = PERSON["email"]
    created = client.post("/api/v1/contacts", json=PERSON, headers=admin)
    assert created.status_code == 201
    cid = created.json["id"]
    assert (
        client.patch(
            f"/api/v1/contacts/{cid}", json={"phone": PHONE, "last_name": "Quistorp"}, headers=admin
        ).status_code
        == 200
    )
    assert (
        client.post(
            f"/api/v1/contacts/{cid}/notes", json={"body": "Zelda Quistorp called from +49 30 123456"}, headers=admin
        ).status_code
        == 201
    )
    assert (
        client.post(
            f"/api/v1/contacts/{cid}/consents", json={"channel": "email", "granted": True}, headers=admin
        ).status_code
        == 201
    )
    csv = tmp_path / "crm.csv"
    csv.write_text(f"email,first_name,last_name,plan\n{email},Zelda,Quistorp,pro\n")
    assert runner.invoke(["contacts", "import", str(csv), "--map", "plan=-"]).exit_code == 0
    # a welcome mail the SMTP server refuses, quoting the address: a failed message, a bounce suppression
    smtp_server.handler.reject_with = f"550 5.1.1 <{email}>: Recipient address rejected: unknown user"
    assert post_event(client, api_key(app), email=email, name="Zelda Quistorp").status_code == 202
    run_worker(app)
    smtp_server.handler.reject_with = None
    # a bounce report quoting it again, for the same message
    report = [{"type": "bounce", "email": email, "detail": f"550 5.1.1 <{email}>: mailbox unavailable"}]
    assert (
        client.post("/hooks/email/bounce", json=report, headers={"Authorization": f"Bearer {HOOK_SECRET}"}).json[
            "events"
        ]
        == 1
    )
    with app.app_context():
        session = get_session()
        secret = app.config["SECRET_KEY"]
        # written by an earlier release, which kept provider diagnostics as they came
        session.add(
            Suppression(
                channel="sms",
                address_hash=address_hash(secret, "sms", PHONE),
                reason="bounced",
                detail=f"Twilio 30005: {PHONE} unknown destination",
            )
        )
        audit(session, "cli", "contacts.checked", "import", None, sample=email, person="Zelda Quistorp")
        session.commit()
    assert {t for _table, _column, t in _readable(app)} == set(TRACES)  # the scan sees what is there

    assert client.delete(f"/api/v1/contacts/{cid}", headers=admin).status_code == 200
    assert _readable(app) == []
    logged = _captured(caplog)
    assert "recipient address rejected" in logged  # the refusal was logged, without the address
    assert [t for t in TRACES if t in logged] == []
    with app.app_context():
        session = get_session()
        assert suppression_reason(session, secret, "email", email) == "bounced"  # still never mailed
        assert suppression_reason(session, secret, "sms", PHONE) == "bounced"


def test_log_handlers_of_nudge_processes_mask_addresses_even_in_tracebacks():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(Redact())
    logger = logging.getLogger("server.tests.redact")
    logger.addHandler(handler)
    try:
        raise ValueError("recipient ann@example.com refused, call +1 415 555 2671")
    except ValueError:
        logger.exception("send to %s failed", "bob@example.org")
    finally:
        logger.removeHandler(handler)
    written = stream.getvalue()
    assert "send to [email] failed" in written and "ValueError: recipient [email] refused, call [phone]" in written
    assert "@example" not in written and "555" not in written

    root = logging.getLogger()
    configure_logging()  # what every `nudge` command runs
    try:
        assert root.handlers and all(any(isinstance(f, Redact) for f in h.filters) for h in root.handlers)
    finally:
        for h in root.handlers:
            for f in [f for f in h.filters if isinstance(f, Redact)]:
                h.removeFilter(f)


def _path(url):
    return re.sub(r"^https?://[^/]+", "", url)


def test_an_erased_person_is_mailed_again_only_after_confirming_a_double_opt_in(
    app, client, runner, smtp_server, tmp_path
):
    load_rules(app)  # a marketing welcome on form.submitted
    make_form(app)  # double opt-in
    admin, ingest = {"Authorization": f"Bearer {api_key(app, 'admin')}"}, api_key(app)
    email = "back@example.com"
    first = client.post("/api/v1/contacts", json={"email": email}, headers=admin).json["id"]
    assert client.delete(f"/api/v1/contacts/{first}", headers=admin).status_code == 200

    # imports and API calls never lift the erasure: not an upsert, not a consent, not an import, not an event
    again = client.post("/api/v1/contacts/upsert", json={"email": email, "first_name": "Bea"}, headers=admin)
    assert again.status_code == 201
    cid = again.json["contact"]["id"]
    assert (
        client.post(
            f"/api/v1/contacts/{cid}/consents", json={"channel": "email", "granted": True}, headers=admin
        ).status_code
        == 201
    )
    csv = tmp_path / "list.csv"
    csv.write_text(f"email,first_name\n{email},Bea\n")
    assert runner.invoke(["contacts", "import", str(csv)]).exit_code == 0
    assert post_event(client, ingest, email=email).status_code == 202
    run_worker(app)
    assert smtp_server.messages == []

    # signing up again: the confirmation goes out …
    assert (
        client.post("/f/newsletter", data={"email": email, "consent": "yes"}).status_code == 303
    )  # to its thank-you page
    run_worker(app)
    [confirmation] = smtp_server.wait_for(1)
    assert smtp_server.handler.envelopes[0][1] == [email]
    link = re.search(r"https?://\S+/f/confirm/\S+", confirmation.get_body(("plain",)).get_content()).group(0)
    # … but until it is confirmed, marketing mail is not
    post_event(client, ingest, email=email)
    run_worker(app)
    assert len(smtp_server.messages) == 1

    assert client.post(_path(link)).status_code == 200  # a new, recorded consent
    run_worker(app)
    welcome = smtp_server.wait_for(2)[1]
    assert welcome["Subject"] == "Welcome, Bea!" and smtp_server.handler.envelopes[1][1] == [email]
    with app.app_context():
        session = get_session()
        assert suppression_reason(session, app.config["SECRET_KEY"], "email", email) is None
        sources = session.scalars(sa.select(Consent.source).where(Consent.contact_id == cid).order_by(Consent.id))
        assert list(sources) == ["api", "form:newsletter:confirmed"]


def test_a_single_opt_in_form_does_not_lift_an_erasure(app, client, smtp_server):
    load_rules(app)
    make_form(app, double_opt_in=False)
    admin = {"Authorization": f"Bearer {api_key(app, 'admin')}"}
    first = client.post("/api/v1/contacts", json={"email": "typed@example.com"}, headers=admin).json["id"]
    client.delete(f"/api/v1/contacts/{first}", headers=admin)
    assert client.post("/f/newsletter", data={"email": "typed@example.com", "consent": "yes"}).status_code == 303
    run_worker(app)  # form.submitted: the welcome is suppressed, since anyone can type an address into a form
    assert smtp_server.messages == []
    with app.app_context():
        assert suppression_reason(get_session(), app.config["SECRET_KEY"], "email", "typed@example.com") == "erased"


def test_a_database_error_never_quotes_the_values_it_was_given(app):
    with app.app_context():
        session = get_session()
        with pytest.raises(sa.exc.IntegrityError) as refused:
            session.execute(
                sa.insert(Suppression),
                [{"channel": "email", "address_hash": "h", "reason": "bounced", "detail": "zelda.quist@example.com"}]
                * 2,
            )
        session.rollback()
        assert "zelda" not in str(refused.value) and "parameters hidden" in str(refused.value)


def crash(note: str) -> None:
    """A job that dies quoting what it was given (as a driver's error may quote an address)."""
    raise RuntimeError(f"could not handle {note}")


def _failed_notes(app) -> list[str]:
    tq = get_queue(app)
    texts = []
    for queue in tq.queues:
        for job_id in queue.failed_job_registry.get_job_ids():
            job = queue.fetch_job(job_id)
            texts.append(job.args[0] if job is not None else "(record gone, id kept)")
    return sorted(texts)


def test_erasure_clears_failed_jobs_that_quote_the_person_from_redis(app, client):
    key = api_key(app, "admin")
    created = client.post(
        "/api/v1/contacts", json={**PERSON, "phone": PHONE}, headers={"Authorization": f"Bearer {key}"}
    )
    assert created.status_code == 201, created.json
    tq = get_queue(app)
    tq.enqueue(crash, "Zelda.Quist@example.com".lower())
    tq.enqueue_send(crash, f"a text to {PHONE}")
    tq.enqueue(crash, "ana@example.com")  # someone else's: kept
    failures: list[str] = []
    run_worker(app, failures=failures)
    assert len(failures) == 3
    assert _failed_notes(app) == [f"a text to {PHONE}", "ana@example.com", "zelda.quist@example.com"]
    failed_ids = [job_id for queue in tq.queues for job_id in queue.failed_job_registry.get_job_ids()]
    erased = client.delete(f"/api/v1/contacts/{created.json['id']}", headers={"Authorization": f"Bearer {key}"})
    assert erased.status_code in (200, 204), erased.get_data(as_text=True)
    assert _failed_notes(app) == ["ana@example.com"]
    # their job records and results (tracebacks) are gone from Redis, not only from the registry
    left = [job_id for job_id in failed_ids if tq.redis.exists(f"rq:job:{job_id}", f"rq:results:{job_id}")]
    assert len(left) == 1 and tq.redis.exists(f"rq:job:{left[0]}", f"rq:results:{left[0]}") == 2
