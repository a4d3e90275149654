"""Tokens made by ``server.links.sign`` are itsdangerous tokens: the serializer of their purpose reads them, and
they are the very bytes it makes (a payload too short to be worth compressing is not compressed)."""

from __future__ import annotations

import time

import pytest
from itsdangerous import URLSafeTimedSerializer

from server import links

SECRET = "s3cret-for-the-links-test-0123456789"
PAYLOADS = [
    {"p": "Zq3v9XkL2mN8", "m": "rule:4:enrolment:17:step:2"},
    {"p": "Zq3v9XkL2mN8", "ch": "email", "m": "bcast:9:c:1"},
    {"p": "Zq3v9XkL2mN8", "m": "k", "u": "https://example.com/a?x=é&y=ü"},
    {"p": "Zq3v9XkL2mN8", "m": "k", "u": "https://example.com/" + "path/" * 40},  # long: compressed
    {"p": "Zq3v9XkL2mN8", "f": 3, "a": None},
]


@pytest.fixture
def app():
    from flask import Flask

    flask_app = Flask(__name__)
    flask_app.config["SECRET_KEY"] = SECRET
    return flask_app


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("purpose", sorted(links.MAX_AGE))
def test_a_token_is_the_one_itsdangerous_makes_and_verifies(app, purpose, payload, monkeypatch):
    now = int(time.time())
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: now)
    serializer = URLSafeTimedSerializer(SECRET, salt=f"nudge.link.{purpose}")
    token = links.sign(purpose, payload, app=app)
    assert token == serializer.dumps(payload)
    assert serializer.loads(token, max_age=60) == payload
    assert links.verify(purpose, token, app=app).data == payload
    if len(str(payload)) > 150:
        assert token.startswith(".")  # compressed, as itsdangerous does


def test_tokens_signed_in_successive_seconds_each_carry_their_own_second(app, monkeypatch):
    clock = [int(time.time())]
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: clock[0])
    serializer = URLSafeTimedSerializer(SECRET, salt="nudge.link.open")
    for _ in range(3):
        first, again = links.sign("open", PAYLOADS[0], app=app), links.sign("open", PAYLOADS[0], app=app)
        assert first == again == serializer.dumps(PAYLOADS[0])
        assert serializer.loads(first, return_timestamp=True)[1].timestamp() == clock[0]
        clock[0] += 1


def test_a_short_payload_is_not_compressed_and_still_verifies(app):
    payload = {"p": "a" * 60}  # itsdangerous would compress it (zlib wins on the repeats)
    token = links.sign("open", payload, app=app)
    assert not token.startswith(".")
    assert URLSafeTimedSerializer(SECRET, salt="nudge.link.open").loads(token) == payload


def test_a_token_of_one_purpose_or_key_is_refused_by_another(app):
    token = links.sign("click", PAYLOADS[0], app=app)
    with pytest.raises(links.BadLink):
        links.verify("unsubscribe", token, app=app)
    other = URLSafeTimedSerializer(SECRET + "x", salt="nudge.link.click")
    with pytest.raises(Exception, match="does not match"):
        other.loads(token)
    with pytest.raises(ValueError, match="unknown link purpose"):
        links.sign("nope", {}, app=app)
