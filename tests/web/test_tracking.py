import re
from datetime import timedelta

import pytest

from server.links import click_url, open_url, sign
from server.models import utcnow

from .conftest import HUMAN, events


def _path(url):
    return re.sub(r"^https?://[^/]+", "", url)


def test_open_pixel_records_a_human_open(app, client, contact_id, public_id, sent_message):
    with app.app_context():
        url = open_url(public_id, sent_message)
    assert str(contact_id) not in url.rsplit("/", 1)[-1].split(".")[0][:3]  # a token, not an id
    response = client.get(_path(url), headers=HUMAN)
    assert response.status_code == 200 and response.mimetype == "image/gif"
    [opened] = events(app, "email.opened")
    assert opened.contact_id == contact_id
    assert opened.props["machine"] is False and opened.props["message"] == sent_message
    assert opened.props["template"] == "news"


@pytest.mark.parametrize(
    "method,headers,environ,reason",
    [
        ("HEAD", HUMAN, {}, "head-request"),
        ("GET", {"User-Agent": "Mozilla/5.0 (compatible; Barracuda Sentinel)"}, {}, "user-agent:barracuda"),
        ("GET", {"User-Agent": "python-requests/2.31"}, {}, "user-agent:python-"),
        ("GET", {"User-Agent": ""}, {}, "no-user-agent"),
        ("GET", HUMAN, {"REMOTE_ADDR": "17.58.100.1"}, "apple-privacy-proxy"),
    ],
)
def test_machine_opens_are_flagged(app, client, public_id, sent_message, method, headers, environ, reason):
    with app.app_context():
        url = open_url(public_id, sent_message)
    response = client.open(_path(url), method=method, headers=headers, environ_base=environ)
    assert response.status_code == 200
    [opened] = events(app, "email.opened")
    assert opened.props["machine"] is True and opened.props["machine_reason"] == reason


def test_open_seconds_after_send_is_a_machine(app, client, contact_id, public_id):
    from server.db import get_session
    from server.models import Message

    with app.app_context():
        session = get_session()
        session.add(
            Message(
                key="fresh",
                contact_id=contact_id,
                channel="email",
                template="t",
                status="sent",
                sent_at=utcnow() - timedelta(seconds=2),
                data={},
            )
        )
        session.commit()
        url = open_url(public_id, "fresh")
    client.get(_path(url), headers=HUMAN)
    [opened] = events(app, "email.opened")
    assert opened.props["machine_reason"] == "seconds-after-send"


def test_click_redirects_to_the_signed_target_and_sets_the_visitor_cookie(app, client, public_id, sent_message):
    with app.app_context():
        url = click_url(public_id, sent_message, "https://shop.example.com/pricing?x=1")
    response = client.get(_path(url), headers=HUMAN)
    assert response.status_code == 302
    assert response.headers["Location"] == "https://shop.example.com/pricing?x=1"
    assert "nudge_vid=" in response.headers["Set-Cookie"] and "HttpOnly" in response.headers["Set-Cookie"]
    [clicked] = events(app, "email.clicked")
    assert clicked.props["url"] == "https://shop.example.com/pricing?x=1" and clicked.props["machine"] is False


def test_click_to_a_tracked_site_carries_the_visitor_id(app, client, public_id, sent_message):
    app.config["TRACK_DOMAINS"] = "example.com"
    with app.app_context():
        url = click_url(public_id, sent_message, "https://www.example.com/a?b=c")
    location = client.get(_path(url), headers=HUMAN).headers["Location"]
    assert location.startswith("https://www.example.com/a?b=c&_nv=")
    with app.app_context():
        other = click_url(public_id, sent_message, "https://elsewhere.org/")
    assert client.get(_path(other), headers=HUMAN).headers["Location"] == "https://elsewhere.org/"


@pytest.mark.parametrize("path", ["/c/{token}x", "/c/x{token}", "/o/{token}x.gif", "/c/nonsense", "/o/1.gif", "/c/1"])
def test_tampered_tokens_are_404_and_never_redirect(app, client, public_id, sent_message, path):
    with app.app_context():
        token = click_url(public_id, sent_message, "https://example.com/").rsplit("/", 1)[-1]
        if path.startswith("/o/"):
            token = open_url(public_id, sent_message).rsplit("/", 1)[-1].removesuffix(".gif")
    response = client.get(path.format(token=token), headers=HUMAN)
    assert response.status_code == 404 and "Location" not in response.headers
    assert events(app) == []


def test_a_token_for_another_purpose_is_refused(app, client, public_id):
    with app.app_context():
        forged = sign("unsubscribe", {"p": public_id, "u": "https://evil.example/"})
    assert client.get(f"/c/{forged}").status_code == 404


def test_click_to_a_non_http_target_is_404(app, client, public_id):
    with app.app_context():
        token = sign("click", {"p": public_id, "m": "k", "u": "javascript:alert(1)"})
    assert client.get(f"/c/{token}").status_code == 404


def test_snippet_reports_page_visits_of_identified_visitors(app, client, contact_id, public_id, sent_message):
    script = client.get("/t/nudge.js")
    assert script.status_code == 200 and script.mimetype == "text/javascript"
    source = script.get_data(as_text=True)
    assert "http" not in re.sub(r"/\*.*?\*/", "", source, flags=re.S)  # talks only to its own origin
    with app.app_context():
        url = click_url(public_id, sent_message, "https://example.com/")
    client.get(_path(url), headers=HUMAN)  # sets the visitor cookie
    body = '{"url": "https://example.com/pricing", "referrer": "https://news.example/"}'
    assert client.post("/t/visit", data=body, content_type="text/plain").status_code == 204
    [visit] = events(app, "page.visited")
    assert visit.contact_id == contact_id
    assert visit.props == {"url": "https://example.com/pricing", "referrer": "https://news.example/"}


def test_anonymous_and_forged_visits_record_nothing(app, client):
    assert client.post("/t/visit", data='{"url": "https://example.com/"}', content_type="text/plain").status_code == 204
    forged = '{"url": "https://example.com/", "v": "eyJjIjoxfQ.forged.sig"}'
    assert client.post("/t/visit", data=forged, content_type="text/plain").status_code == 204
    assert client.post("/t/visit", data="{nope", content_type="text/plain").status_code == 400
    assert client.post("/t/visit", data='{"url": "javascript:x"}', content_type="text/plain").status_code == 400
    assert events(app) == []
