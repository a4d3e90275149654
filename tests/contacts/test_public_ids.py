"""Contacts' public ids (server/models/contacts.py ``new_public_ids``): URL-safe, 96 random bits after the time
they were made, written so that a later id sorts after an earlier one as text (new contacts land at the end of the
unique index) and never twice the same."""

from __future__ import annotations

import base64
import re

from server.models.contacts import new_public_id, new_public_ids

URL_SAFE = re.compile(r"[A-Za-z0-9_-]{24}")


def test_ids_are_url_safe_distinct_and_carry_96_random_bits():
    ids = new_public_ids(2000)
    assert all(URL_SAFE.fullmatch(i) for i in ids)
    assert len(set(ids)) == 2000
    tails = {base64.urlsafe_b64decode(i[8:]) for i in ids}
    assert len(tails) == 2000 and all(len(t) == 12 for t in tails)


def test_an_id_made_later_sorts_after_one_made_earlier(monkeypatch):
    import server.models.contacts as contacts

    made = []
    # times whose base-64 digits cross every boundary of the alphabet: '-' < '0'…'9' < 'A'…'Z' < '_' < 'a'…'z'
    times = {ms for k in range(8) for d in range(64) for ms in (d * 64**k, d * 64**k + 64**k - 1)}
    times = sorted(times | {1_700_000_000_000, 1_764_560_000_000, 2**48 - 1})
    for ms in times:
        monkeypatch.setattr(contacts.time, "time_ns", lambda ms=ms: ms * 1_000_000)
        made.append(new_public_id())
    assert [m[:8] for m in made] == sorted(m[:8] for m in made)
    assert len({m[:8] for m in made}) == len(times)
