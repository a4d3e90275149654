import re

import pytest
from sqlalchemy import func, select

from server.consent import current_consent
from server.db import get_session
from server.models import Consent, Contact, Form, FormSubmission, Message

from ..helpers import api_key
from .conftest import events

WORDING = 'I want the <b>monthly</b> newsletter & agree to the "privacy" terms.'


def make_form(app, **overrides):
    values = {
        "slug": "newsletter",
        "name": "Newsletter",
        "channel": "email",
        "wording": WORDING,
        "double_opt_in": True,
        "fields": ["first_name"],
        "tags": ["newsletter"],
    }
    values.update(overrides)
    with app.app_context():
        session = get_session()
        session.add(Form(**values))
        session.commit()


def _count(app, model):
    with app.app_context():
        return get_session().scalar(select(func.count(model.id)))


def test_double_opt_in_records_consent_only_after_the_click(app, client):
    make_form(app)
    sign_up = {
        "email": "New@Example.com",
        "first_name": "Nia",
        "consent": "yes",
        "utm_source": "ad",
        "utm_medium": "cpc",
    }
    response = client.post("/f/newsletter", data=sign_up)
    assert response.status_code == 303 and response.headers["Location"] == "/f/newsletter/thanks"
    thanks = client.get(response.headers["Location"])
    assert thanks.status_code == 200 and "check your inbox" in thanks.get_data(as_text=True)
    with app.app_context():
        session = get_session()
        contact = session.scalar(select(Contact))
        assert contact.email == "new@example.com" and contact.first_name == "Nia"
        assert [t.tag for t in contact.tags] == []  # the form's tags wait for the click
        assert current_consent(session, contact.id, "email") is None
        message = session.scalar(select(Message))
        assert message.template == "confirm_subscription" and message.data["transactional"] is True
        confirm = re.sub(r"^https?://[^/]+", "", message.data["confirm_url"])
    assert events(app) == []
    page = client.get(confirm)  # a scanner's prefetch
    assert page.status_code == 200 and "Yes, subscribe me" in page.get_data(as_text=True)
    assert _count(app, Consent) == 0
    assert client.post(confirm).status_code == 200
    with app.app_context():
        row = get_session().scalar(select(Consent))
        assert row.status == "granted" and row.wording == WORDING and row.source == "form:newsletter:confirmed"
        assert [t.tag for t in get_session().get(Contact, row.contact_id).tags] == ["newsletter"]
    [submitted] = events(app, "form.submitted")
    assert submitted.props["form"] == "newsletter" and submitted.props["confirmed"] is True
    # the sign-up's campaign, kept until the click (the event was recorded without it)
    assert (submitted.props["utm_source"], submitted.props["utm_medium"]) == ("ad", "cpc")
    client.post(confirm)  # twice: nothing new
    assert _count(app, Consent) == 1 and len(events(app, "form.submitted")) == 1


def test_single_opt_in_grants_at_once(app, client):
    make_form(app, double_opt_in=False, redirect_url="https://example.com/thanks")
    response = client.post("/f/newsletter", data={"email": "s@example.com", "consent": "on", "utm_source": "ad"})
    assert response.status_code == 303 and response.headers["Location"] == "https://example.com/thanks"
    with app.app_context():
        row = get_session().scalar(select(Consent))
        assert row.status == "granted" and row.wording == WORDING and row.ip == "127.0.0.1"
    [submitted] = events(app, "form.submitted")
    assert submitted.props["utm_source"] == "ad"


def _known_contact(app, **values):
    with app.app_context():
        session = get_session()
        contact = Contact(email="ann@example.com", first_name="Ann", phone="+14155550100", fields={}, score=0)
        for key, value in values.items():
            setattr(contact, key, value)
        session.add(contact)
        session.commit()
        return contact.id


def _contact(app, contact_id):
    with app.app_context():
        contact = get_session().get(Contact, contact_id)
        return {
            "email": contact.email,
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "phone": contact.phone,
            "tags": sorted(t.tag for t in contact.tags),
        }


def _confirm_link(app):
    with app.app_context():
        message = get_session().scalars(select(Message).order_by(Message.id.desc())).first()
        return re.sub(r"^https?://[^/]+", "", message.data["confirm_url"])


ANN = {"email": "ann@example.com", "first_name": "Ann", "last_name": None, "phone": "+14155550100", "tags": []}


def test_a_double_opt_in_sign_up_changes_an_existing_contact_only_once_confirmed(app, client):
    """Anyone may type anyone's address: Mallory's sign-up with Ann's address must not rename Ann or send Ann's
    texts to Mallory's phone. The changes wait for the link mailed to Ann's address; Ann's click makes them."""
    ann = _known_contact(app)
    make_form(app, fields=["first_name", "last_name", "phone"])
    posted = {"email": "Ann@Example.com", "first_name": "Mallory", "phone": "+14155550199", "consent": "yes"}
    assert client.post("/f/newsletter", data=posted).status_code == 303
    assert _contact(app, ann) == ANN  # nothing changed, not even the form's tag
    assert client.get(_confirm_link(app)).status_code == 200  # a mail scanner's prefetch changes nothing either
    assert _contact(app, ann) == ANN
    # the address's owner signs up again, with her own details, and confirms: her latest sign-up is what is kept
    client.post("/f/newsletter", data={"email": "ann@example.com", "last_name": "Lee", "consent": "yes"})
    assert client.post(_confirm_link(app)).status_code == 200
    assert _contact(app, ann) == {
        **ANN,
        "first_name": "Mallory",
        "last_name": "Lee",
        "phone": "+14155550199",
        "tags": ["newsletter"],
    }
    with app.app_context():  # made: nothing of them is kept any longer
        assert get_session().scalars(select(FormSubmission.held)).all() == [None, None]


def test_held_changes_are_not_made_when_the_address_changed_before_the_click(app, client):
    ann = _known_contact(app)
    make_form(app, fields=["first_name"])
    client.post("/f/newsletter", data={"email": "ann@example.com", "first_name": "Mallory", "consent": "yes"})
    link = _confirm_link(app)
    with app.app_context():
        session = get_session()
        session.get(Contact, ann).email = "ann@elsewhere.example"
        session.commit()
    assert client.post(link).status_code == 200  # the link was mailed to another address than Ann's today
    assert _contact(app, ann) == {**ANN, "email": "ann@elsewhere.example"}


def test_a_single_opt_in_sign_up_fills_in_only_what_an_existing_contact_lacks(app, client):
    ann = _known_contact(app)
    make_form(app, double_opt_in=False, fields=["first_name", "last_name", "phone"])
    posted = {"email": "ann@example.com", "first_name": "Mallory", "last_name": "Lee", "phone": "+14155550199"}
    assert client.post("/f/newsletter", data={**posted, "consent": "yes"}).status_code == 303
    assert _contact(app, ann) == {**ANN, "last_name": "Lee", "tags": ["newsletter"]}


def test_held_changes_of_a_sign_up_never_confirmed_are_cleared_when_its_link_expired(app, client):
    from datetime import timedelta

    from server.engine.retention import clean
    from server.models import utcnow

    _known_contact(app)
    make_form(app, fields=["first_name"])
    client.post("/f/newsletter", data={"email": "ann@example.com", "first_name": "Mallory", "consent": "yes"})
    with app.app_context():
        session = get_session()
        assert session.scalar(select(FormSubmission.held)) == {
            "contact": {"first_name": "Mallory"},
            "tags": ["newsletter"],
        }
        assert clean(session, app.config, utcnow() + timedelta(days=6))["held sign-up changes"] == 0
        assert session.scalar(select(FormSubmission.held)) is not None  # its link still works
        assert clean(session, app.config, utcnow() + timedelta(days=8))["held sign-up changes"] == 1
        assert session.scalar(select(FormSubmission.held)) is None
        assert session.scalar(select(func.count(FormSubmission.id))) == 1  # the submission itself stays


def test_the_thank_you_page_is_a_get_so_reloading_it_signs_up_nobody_again(app, client):
    make_form(app, double_opt_in=False)
    sign_up = {"email": "Reload@Example.com", "first_name": "Rae", "consent": "yes"}
    response = client.post("/f/newsletter", data=sign_up, follow_redirects=True)
    assert [r.status_code for r in response.history] == [303]
    assert response.request.method == "GET" and response.request.path == "/f/newsletter/thanks"
    text = response.get_data(as_text=True)
    assert response.status_code == 200 and "You are signed up." in text and "check your inbox" not in text
    assert "reload@example.com" not in text.lower() and "Rae" not in text  # it names nobody
    assert response.headers["X-Robots-Tag"] == "noindex"
    for _ in range(2):  # reloading it
        assert client.get("/f/newsletter/thanks").status_code == 200
    assert _count(app, Contact) == 1 and _count(app, Consent) == 1 and _count(app, FormSubmission) == 1
    assert len(events(app, "form.submitted")) == 1
    assert client.get("/f/no-such-form/thanks").status_code == 404


def test_honeypot_submission_stores_nothing_but_looks_fine(app, client):
    make_form(app)
    response = client.post(
        "/f/newsletter", data={"email": "bot@example.com", "consent": "yes", "website": "http://spam.example"}
    )
    # the same answer as a real sign-up's: a 303 to the same thank-you page, saying the same
    assert response.status_code == 303 and response.headers["Location"] == "/f/newsletter/thanks"
    assert "check your inbox" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert _count(app, Contact) == 0 and _count(app, Message) == 0


def test_submissions_are_rate_limited_per_ip(app, client):
    make_form(app, double_opt_in=False)
    app.config["FORM_RATE_LIMIT"] = 3
    codes = [
        client.post("/f/newsletter", data={"email": f"r{i}@example.com", "consent": "yes"}).status_code
        for i in range(4)
    ]
    assert codes == [303, 303, 303, 429]
    other_ip = client.post(
        "/f/newsletter", data={"email": "r9@example.com", "consent": "yes"}, environ_base={"REMOTE_ADDR": "10.1.2.3"}
    )
    assert other_ip.status_code == 303
    assert _count(app, Contact) == 4


@pytest.mark.parametrize(
    "data,field",
    [
        ({"email": "not-an-email", "consent": "yes"}, "email"),
        ({"email": "", "consent": "yes"}, "email"),
        ({"email": "a@example.com"}, "consent"),
        ({"email": "a@example.com", "consent": "yes", "is_admin": "1"}, "is_admin"),
    ],
)
def test_bad_submissions_are_422_and_store_nothing(app, client, data, field):
    make_form(app)
    response = client.post("/f/newsletter", data=data)
    assert response.status_code == 422
    assert _count(app, Contact) == 0 and _count(app, Message) == 0


def test_xss_in_a_submission_is_stored_as_data_and_escaped(app, client):
    make_form(app, double_opt_in=False)
    payload = '<script>alert("x")</script>'
    client.post("/f/newsletter", data={"email": "x@example.com", "first_name": payload, "consent": "yes"})
    with app.app_context():
        assert get_session().scalar(select(Contact.first_name)) == payload
    bad = client.post("/f/newsletter", data={"email": payload, "consent": "yes"})
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422 and "<script>alert" not in html and "&lt;script&gt;" in html


def test_hosted_page_and_snippet_escape_the_wording(app, client):
    make_form(app)
    page = client.get("/f/newsletter").get_data(as_text=True)
    assert "&lt;b&gt;monthly&lt;/b&gt;" in page and "<b>monthly</b>" not in page
    key = api_key(app, "admin")
    snippet = client.get("/api/v1/forms/newsletter/snippet", headers={"Authorization": f"Bearer {key}"}).json["html"]
    assert snippet.startswith("<form") and 'action="http://127.0.0.1:8000/f/newsletter"' in snippet
    assert 'name="website"' in snippet and "<script" not in snippet and "&lt;b&gt;" in snippet


def test_expired_and_forged_confirmation_links(app, client, contact_id):
    make_form(app)
    from itsdangerous import TimestampSigner, URLSafeTimedSerializer

    class SignedIn2001(TimestampSigner):
        def get_timestamp(self):
            return 1_000_000_000

    with app.app_context():
        form_id = get_session().scalar(select(Form.id))
    old = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="nudge.link.confirm", signer=SignedIn2001)
    expired = old.dumps({"c": contact_id, "f": form_id})
    response = client.post(f"/f/confirm/{expired}")
    assert response.status_code == 410 and "expired" in response.get_data(as_text=True)
    assert client.post(f"/f/confirm/{expired[:-2]}zz").status_code == 404
    assert _count(app, Consent) == 0


def test_unknown_form_is_404(client):
    assert client.post("/f/nope", data={"email": "a@example.com"}).status_code == 404


def test_forms_api_round_trip(app, client):
    headers = {"Authorization": f"Bearer {api_key(app, 'admin')}"}
    made = client.post(
        "/api/v1/forms", json={"slug": "beta", "wording": "Yes please", "fields": ["first_name"]}, headers=headers
    )
    assert made.status_code == 201 and made.json["url"].endswith("/f/beta")
    bad = client.post("/api/v1/forms", json={"slug": "gamma", "fields": ["password"]}, headers=headers)
    assert bad.status_code == 422 and bad.json["field"] == "fields[0]"
    assert client.post("/api/v1/forms", json={"slug": "confirm"}, headers=headers).status_code == 422
    assert (
        client.patch("/api/v1/forms/beta", json={"double_opt_in": False}, headers=headers).json["double_opt_in"]
        is False
    )
