"""A page of the admin UI's Contacts list with 1,000,000 contacts on SQLite: under 200 ms, first, middle or last.

    .venv/bin/python bench/bench_contacts_page.py [CONTACTS]

Builds the contacts with executemany (bench/crm_data.py), signs in, and times whole pages through the app
(``GET /admin/contacts/…``: search, keyset page, template): the first, a middle and the last page of everyone,
each search kind (email, name, phone, tag, segment) and a page deep inside a name and a tag search. Each figure
is the median of 9 runs, printed next to the baseline measured in the same run — a plain primary-key range scan
of 50 contacts (``SELECT * FROM contacts WHERE id > ? ORDER BY id LIMIT 50``) — and their ratio. Target: every
page under 200 ms.
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select, text

from bench.common import bench_app, size_argument
from bench.crm_data import admin_client, fill_contacts, median_ms, page_link, time_pages
from bench.table import Row, render

TARGET_MS = 200


def measure(count: int) -> list[Row]:
    """Write *count* contacts and time each page of the Contacts list next to a primary-key range scan."""
    from server.db import get_session
    from server.models import Contact, Segment

    with bench_app() as app:
        seconds = fill_contacts(app, count)
        print(f"{count:,} contacts written in {seconds:.1f} s")
        client = admin_client(app)
        with app.app_context():
            session = get_session()
            session.add_all(
                [
                    Segment(name="High scorers", condition="contact.score >= 90"),
                    Segment(name="VIP subscribers", condition='tag == "vip" and tag == "newsletter"'),
                ]
            )
            session.commit()
            mid_name = session.execute(
                select(Contact.name_key, Contact.id)
                .where(Contact.name_key >= "mia")
                .order_by(Contact.name_key, Contact.id)
                .offset(count // 80)
                .limit(1)
            ).one()
            conn = get_session().connection()

            def baseline() -> None:
                rows = conn.execute(
                    text("SELECT * FROM contacts WHERE id > :after ORDER BY id LIMIT 50"), {"after": count // 2}
                ).all()
                assert len(rows) == 50

            base = median_ms(baseline, runs=25)

        def url(after: tuple | None = None, scope: str = ":", **query: str) -> str:
            if after is not None:
                query["after"] = page_link(app, scope, after)
            return "/admin/contacts/" + ("?" + urlencode(query) if query else "")

        pages = [
            ("everyone, first page", url()),
            ("everyone, middle page", url((count // 2,))),
            ("everyone, last page", url((40,))),
            ("email starts with user000", url(by="email", q="user000")),
            ("name starts with 'mia'", url(by="name", q="mia")),
            ("name 'mia', a page deep inside", url(tuple(mid_name), "name:mia", by="name", q="mia")),
            ("name 'lena we' (first and last)", url(by="name", q="lena we")),
            ("last name 'hoffmann'", url(by="name", q="hoffmann")),
            ("phone +4930150", url(by="phone", q="+49 30 150")),
            ("tag vip", url(by="tag", q="vip")),
            ("tag vip, middle page", url((count // 2 + 1,), "tag:vip", by="tag", q="vip")),
            ("segment High scorers (score >= 90)", url(by="segment", q="High scorers")),
            ("segment VIP subscribers (two tags)", url(by="segment", q="VIP subscribers")),
        ]
        print(f"baseline: primary-key range scan of 50 contacts: {base:.2f} ms (median of 25)")
        return time_pages(
            pages, client, base, "primary-key range scan of 50", TARGET_MS, f"contacts page, {count:,} contacts"
        )


def rows(full: bool) -> list[Row]:
    return measure(1_000_000 if full else 100_000)


def main() -> None:
    print(render(measure(size_argument(__doc__, 1_000_000))))


if __name__ == "__main__":
    main()
