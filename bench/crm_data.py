"""Data for the admin UI benchmarks: many contacts written fast with executemany, and a signed-in client to time pages.

Contacts get names from small lists (so a name prefix matches many), an address and a Berlin phone number each,
scores 0-99, and tags: ``newsletter`` on every second contact, ``vip`` on every tenth.
"""
from __future__ import annotations

import random
import statistics
import time
from datetime import timedelta
from typing import Any, Callable

from sqlalchemy import insert, select

from bench.table import Row, under

FIRST = ["Ana", "Ben", "Carla", "Dan", "Eva", "Farid", "Greta", "Hugo", "Ines", "Jon", "Kim", "Lena", "Mia", "Noah",
         "Olga", "Paul", "Rosa", "Sam", "Tina", "Umar"]
LAST = ["Smith", "Jones", "Lopez", "Müller", "Schmidt", "Rossi", "Dubois", "Novak", "Kowalski", "Silva", "Nagy",
        "Berg", "Costa", "Horvat", "Meyer", "Weber", "Fischer", "Wagner", "Becker", "Hoffmann"]
CHUNK = 50_000


def fill_contacts(app, count: int, seed: int = 7) -> float:
    """Write *count* contacts (and their tags) with executemany; return the seconds it took."""
    from server.db import get_session
    from server.models import Contact, ContactTag, utcnow

    rng = random.Random(seed)
    start = time.perf_counter()
    now = utcnow()
    with app.app_context():
        session = get_session()
        for base in range(0, count, CHUNK):
            contacts, tags = [], []
            for i in range(base, min(base + CHUNK, count)):
                contacts.append({"public_id": f"b{i:09d}", "email": f"user{i:07d}@example.com",
                                 "first_name": rng.choice(FIRST), "last_name": rng.choice(LAST),
                                 "phone": f"+4930{1_000_000 + i}", "score": rng.randrange(100), "fields": {},
                                 "created_at": now - timedelta(seconds=count - i), "updated_at": now})
                if i % 2 == 0:
                    tags.append({"contact_id": i + 1, "tag": "newsletter", "created_at": now})
                if i % 10 == 0:
                    tags.append({"contact_id": i + 1, "tag": "vip", "created_at": now})
            session.execute(insert(Contact.__table__), contacts)
            session.execute(insert(ContactTag.__table__), tags)
            session.commit()
        first = session.scalar(select(Contact.id).order_by(Contact.id).limit(1))
        assert first == 1, "the benchmark needs an empty database (contact ids from 1)"
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
    response = client.post("/admin/login", data={"email": "bench@example.com", "password": "bench passphrase 123",
                                                 "csrf_token": token})
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


def time_pages(pages: list[tuple[str, Any]], client: Any, baseline: float, baseline_name: str, target: float,
               prefix: str) -> list[Row]:
    """Time each ``(name, url or action)`` page (median of 9 runs; a URL is a GET that must answer 200) as a row
    next to *baseline* (milliseconds, measured in the same run), with its target: under *target* ms."""
    rows = []
    for name, page in pages:
        ms = median_ms(get_ok(client, page) if isinstance(page, str) else page)
        rows.append(under(f"{prefix}: {name}", ms, "ms", baseline, baseline_name, target))
        print(f"{name:<48} {ms:8.1f} ms", flush=True)
    return rows
