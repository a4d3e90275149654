import re

from server.auth import ensure_first_admin
from server.db import get_session


def _csrf(client, path="/admin/login"):
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_first_admin_is_created_once(app):
    with app.app_context():
        first = ensure_first_admin(get_session())
        assert first is not None and first[0] == "admin@localhost" and len(first[1]) >= 12
        assert ensure_first_admin(get_session()) is None


def test_sign_in_with_the_first_admin_login(app, client):
    with app.app_context():
        email, password = ensure_first_admin(get_session())
    assert client.get("/admin/").status_code == 302
    response = client.post("/admin/login", data={"email": email, "password": password, "csrf_token": _csrf(client)})
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/")
    assert "contacts" in client.get("/admin/").get_data(as_text=True)


def test_wrong_password_is_refused(app, client):
    with app.app_context():
        email, _ = ensure_first_admin(get_session())
    response = client.post("/admin/login", data={"email": email, "password": "guess", "csrf_token": _csrf(client)})
    assert response.status_code == 401
    assert "Wrong email or password" in response.get_data(as_text=True)


def test_post_without_csrf_token_is_refused(app, client):
    with app.app_context():
        email, password = ensure_first_admin(get_session())
    client.get("/admin/login")
    response = client.post("/admin/login", data={"email": email, "password": password})
    assert response.status_code == 400
    assert client.get("/admin/").status_code == 302  # still signed out


def test_next_parameter_is_never_an_open_redirect(app, client):
    with app.app_context():
        email, password = ensure_first_admin(get_session())
    token = _csrf(client)
    response = client.post(
        "/admin/login?next=//evil.example.com/", data={"email": email, "password": password, "csrf_token": token}
    )
    assert response.headers["Location"] == "/admin/"
