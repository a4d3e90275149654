"""Behind Caddy or nginx (docs/deploy.md): with NUDGE_TRUSTED_PROXY a real ``nudge web`` takes the client's
address from the proxy's X-Forwarded-For; without it, the header is ignored (anyone could send it)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from server.db import get_session
from server.models import Contact

from ..helpers import api_key
from ..servers import nudge_web, reap

ROOT = Path(__file__).resolve().parents[2]


def _serve(config, tmp_path, **extra):
    """``nudge web`` in its own process on the test's database; return (process, port)."""
    try:
        return nudge_web(config, tmp_path / f"web-{len(extra)}.log", "--threads", "2", **extra)
    except RuntimeError as exc:
        pytest.fail(str(exc))


def _consent_ip(port: int, key: str, contact_id: int) -> str:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/contacts/{contact_id}/consents",
        data=json.dumps({"channel": "email", "granted": True}).encode(),
        headers={
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
            "X-Forwarded-For": "203.0.113.7",
            "X-Forwarded-Proto": "https",
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
        return json.load(response)["ip"]


def test_the_client_address_comes_from_the_trusted_proxy_only(app, config, tmp_path):
    key = api_key(app, "admin")
    with app.app_context():
        session = get_session()
        contact = Contact(email="ana@example.com")
        session.add(contact)
        session.commit()
        contact_id = contact.id
    for extra, expected in (({"TRUSTED_PROXY": "127.0.0.1"}, "203.0.113.7"), ({}, "127.0.0.1")):
        proc, port = _serve(config, tmp_path, **extra)
        try:
            assert _consent_ip(port, key, contact_id) == expected, extra
        finally:
            reap(proc, timeout=15)
