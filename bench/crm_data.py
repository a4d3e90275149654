"""Data for the admin UI benchmarks: many contacts written fast (set-wise, in SQL), and a signed-in client to time
pages.

Contacts get names from small lists (so a name prefix matches many), an address and a Berlin phone number each,
scores 0-99, and tags: ``newsletter`` on every second contact, ``vip`` on every tenth.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, text

from bench.table import Row, under

FIRST = [
    "Ana",
    "Ben",
    "Carla",
    "Dan",
    "Eva",
    "Farid",
    "Greta",
    "Hugo",
    "Ines",
    "Jon",
    "Kim",
    "Lena",
    "Mia",
    "Noah",
    "Olga",
    "Paul",
    "Rosa",
    "Sam",
    "Tina",
    "Umar",
]
LAST = [
    "Smith",
    "Jones",
    "Lopez",
    "Müller",
    "Schmidt",
    "Rossi",
    "Dubois",
    "Novak",
    "Kowalski",
    "Silva",
    "Nagy",
    "Berg",
    "Costa",
    "Horvat",
    "Meyer",
    "Weber",
    "Fischer",
    "Wagner",
    "Becker",
    "Hoffmann",
]


def fill_contacts(app, count: int, seed: int = 7) -> float:
    """Write *count* contacts (and their tags) on SQLite with ``INSERT … SELECT`` from a recursive counter (a
    million in seconds); return the seconds it took. Names come from :data:`FIRST` and :data:`LAST` (spread by a
    multiplier: deterministic, well mixed), scores 0-99."""
    from server.db import get_session
    from server.models import Contact, utcnow

    def names(values: list[str]) -> str:
        return " ".join(f"WHEN {k} THEN '{v}'" for k, v in enumerate(values))

    start = time.perf_counter()
    base = utcnow().strftime("%Y-%m-%d %H:%M:%S")
    with app.app_context():
        session = get_session()
        assert session.scalar(select(Contact.id).limit(1)) is None, "the benchmark needs an empty database"
        session.execute(
            text(f"""
            WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < :count)
            INSERT INTO contacts (id, public_id, email, first_name, last_name, phone, score, fields, created_at,
                                  updated_at)
            SELECT i + 1, printf('b%09d', i), printf('user%07d@example.com', i),
                   CASE (i * 7 + {seed}) % {len(FIRST)} {names(FIRST)} END,
                   CASE (i * 13 / {len(FIRST)} + i) % {len(LAST)} {names(LAST)} END,
                   '+4930' || (1000000 + i), (i * 37 + {seed}) % 100, '{{}}',
                   datetime(:base, '-' || (:count - i) || ' seconds'), :base
            FROM n"""),
            {"count": count, "base": base},
        )
        for tag, every in (("newsletter", 2), ("vip", 10)):
            session.execute(
                text(
                    "INSERT INTO contact_tags (contact_id, tag, created_at) "
                    "SELECT id, :tag, :base FROM contacts WHERE (id - 1) % :every = 0"
                ),
                {"tag": tag, "every": every, "base": base},
            )
        session.commit()
    return time.perf_counter() - start


def admin_client(app) -> Any:
    """A test client signed in as an admin through the sign-in form."""
    import re

    from server.auth import hash_password
    from server.db import get_session
    from server.models import User

    with app.app_context():
        session = get_session()
        session.add(User(email="bench@example.com", password_hash=hash_password("bench passphrase 123"), role="admin"))
        session.commit()
    client = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/admin/login").get_data(as_text=True)).group(1)
    response = client.post(
        "/admin/login", data={"email": "bench@example.com", "password": "bench passphrase 123", "csrf_token": token}
    )
    assert response.status_code == 302, response.status_code
    return client


def median_ms(action: Callable[[], Any], runs: int = 9) -> float:
    """The median wall time of *action* in milliseconds, after one warm-up run."""
    action()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def get_ok(client, url: str) -> Callable[[], Any]:
    """A GET of *url* that must answer 200."""

    def run() -> Any:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code, response.get_data(as_text=True)[:300])
        return response

    return run


def page_link(app, scope: str, after: tuple[Any, ...]) -> str:
    """The ``after=`` value of a page starting after *after* in the list *scope* (as the page's own link)."""
    from server.web.crm.paging import next_link

    with app.test_request_context():
        return next_link(scope, after) or ""


def time_pages(
    pages: list[tuple[str, Any]], client: Any, baseline: float, baseline_name: str, target: float, prefix: str
) -> list[Row]:
    """Time each ``(name, url or action)`` page (median of 9 runs; a URL is a GET that must answer 200) as a row
    next to *baseline* (milliseconds, measured in the same run), with its target: under *target* ms."""
    rows = []
    for name, page in pages:
        ms = median_ms(get_ok(client, page) if isinstance(page, str) else page)
        rows.append(under(f"{prefix}: {name}", ms, "ms", baseline, baseline_name, target))
        print(f"{name:<48} {ms:8.1f} ms", flush=True)
    return rows
