"""Admin sign-in: no open redirect, throttled per account and address, same work for unknown accounts,
sessions that end on the server, cookie flags and framing headers on every HTML page."""

from __future__ import annotations

import re

import pytest
from argon2 import PasswordHasher

from server.app import create_app
from server.auth import ensure_first_admin
from server.db import get_session
from server.links import preferences_url, unsubscribe_url
from server.models import Contact

from .test_forms import make_form


def _admin(app):
    with app.app_context():
        return ensure_first_admin(get_session())


def _csrf(client, path="/admin/login"):
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _sign_in(client, email, password, query=""):
    return client.post(f"/admin/login{query}", data={"email": email, "password": password, "csrf_token": _csrf(client)})


@pytest.fixture
def guard_clock(app):
    """The sign-in guard's clock, moved by hand (no sleeping)."""
    guard = app.extensions["nudge.signin"]
    now = [1_900_000_000.0]
    guard.clock = lambda: now[0]
    return now


# -- 13: the next parameter -------------------------------------------------------------
@pytest.mark.parametrize(
    "target",
    [
        "/%09/evil.example/",
        "/%0a/evil.example/",
        "/%0d%0a/evil.example/",
        "%09//evil.example/",
        "/%5Cevil.example/",
        "/%5C%5Cevil.example/",
        "//evil.example/",
        "/%2F/evil.example/",
        "/%252F%252Fevil.example/",
        "https://evil.example/",
        "javascript:alert(1)",
        "/admin/%0d%0aSet-Cookie:%20x=1",
        "%2F%2Fevil.example",
    ],
)
def test_next_never_leads_off_site(app, client, target):
    email, password = _admin(app)
    response = _sign_in(client, email, password, f"?next={target}")
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"


def test_next_keeps_a_path_on_this_site(app, client):
    email, password = _admin(app)
    response = _sign_in(client, email, password, "?next=/admin/%3Fpage%3D2")
    assert response.status_code == 302 and response.headers["Location"] == "/admin/?page=2"


# -- 16: sessions end on the server ----------------------------------------------------------
def _session_cookie(response) -> str:
    header = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("session="))
    return header.split(";", 1)[0].split("=", 1)[1]


def test_a_cookie_copied_before_logout_opens_nothing_after_it(app, client):
    email, password = _admin(app)
    cookie = _session_cookie(_sign_in(client, email, password))
    thief = app.test_client()
    thief.set_cookie("session", cookie)
    assert thief.get("/admin/").status_code == 200
    logout = client.post("/admin/logout", data={"csrf_token": _csrf(client, "/admin/")})
    assert logout.status_code == 302
    response = thief.get("/admin/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/admin/login")


def test_a_session_unused_for_twelve_hours_ends(app, client, clock):
    """Sessions age by the app's clock, the one the engine and every process of a test share."""
    email, password = _admin(app)
    _sign_in(client, email, password)
    clock.advance(11 * 3600)
    assert client.get("/admin/").status_code == 200  # in use: the idle time starts again
    clock.advance(11 * 3600)
    assert client.get("/admin/").status_code == 200
    clock.advance(12 * 3600 + 1)
    assert client.get("/admin/").status_code == 302


def test_a_new_password_from_the_cli_ends_every_session_of_that_user(app, client, runner):
    email, password = _admin(app)
    _sign_in(client, email, password)
    other = app.test_client()
    _sign_in(other, email, password)
    assert client.get("/admin/").status_code == other.get("/admin/").status_code == 200
    result = runner.invoke(["admin", "password", email])
    assert result.exit_code == 0, result.output
    assert client.get("/admin/").status_code == 302
    assert other.get("/admin/").status_code == 302
    assert _sign_in(client, email, result.output.strip().splitlines()[-1]).status_code == 302


def test_the_session_cookie_is_lax_httponly_and_secure_only_on_https(app, client, config):
    email, password = _admin(app)
    header = next(
        h for h in _sign_in(client, email, password).headers.getlist("Set-Cookie") if h.startswith("session=")
    )
    assert "SameSite=Lax" in header and "HttpOnly" in header and "Secure" not in header
    https = create_app({**config, "BASE_URL": "https://nudge.example.com"})
    try:
        page = https.test_client().get("/admin/login")
        header = next(h for h in page.headers.getlist("Set-Cookie") if h.startswith("session="))
        assert "SameSite=Lax" in header and "Secure" in header
    finally:
        https.extensions["nudge.queue"].close()
        https.extensions["nudge.db"].dispose()


# -- 16: the same work for unknown accounts ---------------------------------------------------
def test_an_unknown_account_costs_one_password_verification_like_a_known_one(app, client, monkeypatch):
    _admin(app)
    calls = []
    real_verify = PasswordHasher.verify

    def counting(self, hash, password):
        calls.append(hash)
        return real_verify(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    assert _sign_in(client, "admin@localhost", "wrong").status_code == 401
    assert _sign_in(client, "nobody@example.com", "wrong").status_code == 401
    assert len(calls) == 2
    assert all(h.startswith("$argon2id$") for h in calls)  # a real hash each time, with the same parameters
    assert calls[0].split("$")[:4] == calls[1].split("$")[:4]


# -- 16: throttling ----------------------------------------------------------------------
def test_an_account_waits_after_five_failures_and_the_wait_doubles(app, client, guard_clock):
    email, password = _admin(app)
    for _ in range(5):
        assert _sign_in(client, email, "wrong").status_code == 401
    refused = _sign_in(client, email, password)  # even the right password must wait
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert "Too many sign-in attempts" in refused.get_data(as_text=True)
    guard_clock[0] += 1
    assert _sign_in(client, email, "wrong").status_code == 401
    assert _sign_in(client, email, password).headers["Retry-After"] == "2"
    guard_clock[0] += 2
    assert _sign_in(client, email, "wrong").status_code == 401
    assert _sign_in(client, email, password).headers["Retry-After"] == "4"
    guard_clock[0] += 4
    assert _sign_in(client, email, password).status_code == 302  # and success clears the account's count
    for _ in range(4):
        assert _sign_in(app.test_client(), email, "wrong").status_code == 401


def test_unknown_accounts_are_throttled_the_same_way(app, client, guard_clock):
    for _ in range(5):
        assert _sign_in(client, "ghost@example.com", "guess").status_code == 401
    assert _sign_in(client, "ghost@example.com", "guess").status_code == 429


def _from(app, address):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_one_address_trying_many_accounts_is_throttled_and_others_are_not(app, guard_clock):
    email, password = _admin(app)
    attacker = _from(app, "203.0.113.7")
    for i in range(20):
        assert _sign_in(attacker, f"user{i}@example.com", "guess").status_code == 401
    assert _sign_in(attacker, "user99@example.com", "guess").status_code == 429
    assert _sign_in(attacker, email, password).status_code == 429
    colleague = _from(app, "198.51.100.1")
    assert _sign_in(colleague, email, password).status_code == 302
    guard_clock[0] += 1
    assert _sign_in(attacker, email, password).status_code == 302


def test_without_redis_each_process_still_throttles_and_sign_in_works(config, caplog):
    app = create_app({**config, "REDIS_URL": "redis://127.0.0.1:9/0"})  # nothing listens there
    app.extensions["nudge.signin"].clock = lambda: 1_900_000_000.0  # still: a slow machine's attempts do not age
    try:
        email, password = _admin(app)
        client = app.test_client()
        assert _sign_in(client, email, password).status_code == 302
        for _ in range(5):
            assert _sign_in(client, email, "wrong").status_code == 401
        assert _sign_in(client, email, password).status_code == 429
        assert "sign-in limits counted in this process only" in caplog.text
        # in two web processes, each counts an attempt twice: the two together allow about what one does
        app.extensions["nudge.signin"].processes = 2
        app.extensions["nudge.signin"]._memory.clear()
        assert _sign_in(client, email, password).status_code == 302
        for _ in range(3):  # 3 in each process, 6 in both, where one process alone allows 5
            assert _sign_in(client, email, "wrong").status_code == 401
        assert _sign_in(client, email, password).status_code == 429
    finally:
        app.extensions["nudge.queue"].close()
        app.extensions["nudge.db"].dispose()


# -- 16: framing headers on every HTML page -------------------------------------------------
def _urls(app, values):
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint == "static":
            continue
        filled = {
            a: values.get(a, 1 if f"<int:{a}>" in rule.rule or f"<id:{a}>" in rule.rule else "x")  # API ids: <id:…>
            for a in rule.arguments
        }
        yield rule, app.url_map.bind("localhost").build(rule.endpoint, filled)


def test_every_html_page_refuses_to_be_framed(app, client):
    email, password = _admin(app)
    make_form(app)
    with app.app_context():
        session = get_session()
        contact = Contact(email="reader@example.com", fields={})
        session.add(contact)
        session.commit()
        unsubscribe = unsubscribe_url(contact.public_id, "email").rsplit("/", 1)[-1]
        preferences = preferences_url(contact.public_id).rsplit("/", 1)[-1]
    _sign_in(client, email, password)
    values = {"slug": "newsletter", "token": unsubscribe}
    html = {}
    for rule, url in _urls(app, values):
        if rule.rule.startswith("/p/"):
            url = url.rsplit("/", 1)[0] + "/" + preferences
        response = client.get(url)
        if response.mimetype == "text/html":
            html[url] = response.status_code
            assert response.headers.get("X-Frame-Options") == "DENY", url
            policy = [d.strip() for d in response.headers.get("Content-Security-Policy", "").split(";")]
            assert "frame-ancestors 'none'" in policy, url  # admin pages add more (tests/web/test_admin_shell.py)
    posted = client.post("/f/newsletter", data={"email": "bad"})  # a public answer page, posted from anywhere
    assert posted.mimetype == "text/html" and posted.headers["X-Frame-Options"] == "DENY"
    ok = {url for url, status in html.items() if status == 200}
    assert {"/admin/login", "/admin/", "/f/newsletter", f"/u/{unsubscribe}"} <= ok, html
    assert any(url.startswith("/p/") for url in ok), html
