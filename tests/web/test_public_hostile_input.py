"""Hostile input on the public pages: signed links whose payload no database holds, click targets a ``Location``
cannot hold, sign-up extras PostgreSQL refuses, and the page a person sees for a link that does not work."""

import json
import re

import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import func, select

from server import links
from server.db import get_session
from server.links import sign, unsubscribe_url
from server.models import Consent, Contact, Form

from .conftest import HUMAN, events

#: (purpose, method, path) of every page a signed link opens
LINK_PAGES = [
    ("open", "GET", "/o/{}.gif"),
    ("click", "GET", "/c/{}"),
    ("unsubscribe", "GET", "/u/{}"),
    ("unsubscribe", "POST", "/u/{}"),
    ("preferences", "GET", "/p/{}"),
    ("confirm", "GET", "/f/confirm/{}"),
    ("confirm", "POST", "/f/confirm/{}"),
]
WERKZEUG_404 = "If you entered the URL manually"


def _forged_but_signed(app, purpose, payload):
    """A token with a valid signature over any JSON (the standard library's escapes a lone surrogate)."""
    signer = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=f"nudge.link.{purpose}", serializer=json)
    return signer.dumps(payload)


def _single_opt_in_form(app):
    with app.app_context():
        session = get_session()
        form = Form(slug="news", name="News", channel="email", wording="", double_opt_in=False, fields=[], tags=[])
        session.add(form)
        session.commit()
        return form.id


@pytest.mark.parametrize(
    "payload",
    [
        {"c": 2**70},  # a legacy row id no integer column holds
        {"c": -(2**70)},
        {"p": "a\x00b"},  # NUL: PostgreSQL refuses it in text
        {"p": "\ud800"},  # a lone surrogate is no text at all
        {"p": "{public_id}", "m": "news\x00"},
        {"p": "{public_id}", "f": 2**70},
    ],
    ids=["huge-row-id", "negative-row-id", "nul-public-id", "surrogate-public-id", "nul-key", "huge-form"],
)
@pytest.mark.parametrize(("purpose", "method", "path"), LINK_PAGES, ids=[f"{m} {p}" for _, m, p in LINK_PAGES])
def test_signed_payload_no_database_holds_is_a_404_on_every_link_page(
    app, client, public_id, sent_message, payload, purpose, method, path
):
    _single_opt_in_form(app)
    data = {k: (public_id if v == "{public_id}" else v) for k, v in payload.items()}
    data.setdefault("u", "https://shop.example.com/")
    token = _forged_but_signed(app, purpose, data)
    response = client.open(path.format(token), method=method, headers=HUMAN)
    assert response.status_code == 404 and "Location" not in response.headers
    assert events(app) == []


@pytest.mark.parametrize(
    "target",
    [
        "https://a\r\nSet-Cookie: x=1",  # the line break goes, "x=1" is then no port
        "http://[::1/x",  # an unclosed IPv6 bracket
        "https://shop.example.com:99999/",
        "https://shop.example.com:http/",
        "https:///no-host",
        "https://" + "a" * 64 + ".example/",  # a label IDNA cannot write
        "https://a..example/",
        "https://shop.example.com/\x0b",
    ],
)
def test_click_target_a_location_cannot_hold_is_404_not_500(app, client, public_id, sent_message, target):
    with app.app_context():
        token = sign("click", {"p": public_id, "m": sent_message, "u": target})
    response = client.get(f"/c/{token}", headers=HUMAN)
    assert response.status_code == 404
    assert "Location" not in response.headers and "Set-Cookie" not in response.headers
    assert events(app) == []


def test_click_target_broken_over_lines_goes_where_the_browser_would(app, client, public_id, sent_message):
    """A template's href broken over lines: browsers drop the tab and line breaks, and so does the redirect."""
    with app.app_context():
        token = sign("click", {"p": public_id, "m": sent_message, "u": "https://shop.example.com/spring\n\t-sale?a=1"})
    response = client.get(f"/c/{token}", headers=HUMAN)
    assert response.status_code == 302
    assert response.headers["Location"] == "https://shop.example.com/spring-sale?a=1"
    [clicked] = events(app, "email.clicked")
    assert clicked.props["url"] == "https://shop.example.com/spring-sale?a=1"


@pytest.mark.parametrize("extra", [{"utm_source": "news\x00letter"}, {"utm_\x00": "x"}])
def test_form_tracking_extras_with_nul_are_422_and_store_nothing(app, client, extra):
    _single_opt_in_form(app)
    response = client.post("/f/news", data={"email": "new@example.com", **extra})
    assert response.status_code == 422
    assert "NUL" in response.get_data(as_text=True)
    with app.app_context():
        session = get_session()
        assert session.scalar(select(func.count(Contact.id))) == 0
        assert session.scalar(select(func.count(Consent.id))) == 0
    assert events(app) == []


def test_confirmation_link_with_a_boolean_form_id_names_no_form(app, client, public_id):
    form_id = _single_opt_in_form(app)
    assert form_id == 1  # True == 1: the form a bool would have found
    with app.app_context():
        token = sign("confirm", {"p": public_id, "f": True, "a": None})
    assert client.get(f"/f/confirm/{token}").status_code == 404
    assert client.post(f"/f/confirm/{token}").status_code == 404
    with app.app_context():
        assert get_session().scalar(select(func.count(Consent.id))) == 0


@pytest.mark.parametrize("path", ["/u/nonsense", "/p/nonsense", "/c/nonsense", "/f/confirm/nonsense"])
def test_a_link_that_does_not_work_says_so(client, path):
    response = client.get(path)
    html = response.get_data(as_text=True)
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert "This link does not work" in html and WERKZEUG_404 not in html
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_an_erased_contacts_preference_link_says_it_does_not_work(app, client):
    with app.app_context():
        token = sign("preferences", {"p": "erased-long-ago"})
    response = client.get(f"/p/{token}")
    assert response.status_code == 404 and "This link does not work" in response.get_data(as_text=True)


def test_an_expired_unsubscribe_link_says_it_expired_and_changes_nothing(app, client, public_id, monkeypatch):
    with app.app_context():
        path = re.sub(r"^https?://[^/]+", "", unsubscribe_url(public_id, "email"))
    monkeypatch.setitem(links.MAX_AGE, "unsubscribe", -1)  # every unsubscribe link is past its age
    for method in ("GET", "POST"):
        response = client.open(path, method=method, data={"List-Unsubscribe": "One-Click"})
        html = response.get_data(as_text=True)
        assert response.status_code == 404 and "This link has expired" in html and WERKZEUG_404 not in html
    with app.app_context():
        assert get_session().scalar(select(func.count(Consent.id))) == 0
    assert events(app) == []
