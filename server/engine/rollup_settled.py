"""How far the stats rollup may read a source on PostgreSQL: the ids below which no row is still being written.

PostgreSQL hands out a row's id (its sequence's next value) when the row is written, not when it is committed: a
transaction that took id 100 may commit after one that took id 101. A rollup that read 101 and moved its
watermark past it would never count 100. SQLite has one writer at a time, so ids are committed in order there.

A transaction that writes a table holds a ``RowExclusiveLock`` on it until it ends. So, read in this order:

1. the table's sequence: ids up to ``taken`` are handed out now;
2. the transactions holding that lock now, and the oldest one's start.

If none holds it, every id up to ``taken`` is settled (committed, or rolled back and never to come). Otherwise an
id is settled when it was handed out before the oldest writer began: each rollup notes (the time, ``taken``) in
this process's memory, and the latest note older than the oldest writer bounds what may be read. Under steady
load some write is always under way; the rollup then reads up to where ids stood one rollup earlier.
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

#: notes kept per database and table: (the time, ids handed out by then), oldest first
_NOTES: dict[tuple[str, str], deque[tuple[datetime, int]]] = {}
_LOCK = threading.Lock()
#: at most this many notes per table (the oldest and the newest)
KEPT = 64

_TAKEN = text("SELECT pg_sequence_last_value(CAST(pg_get_serial_sequence(:table, 'id') AS regclass))")
_WRITERS = text(
    "SELECT clock_timestamp() AS now, count(l.pid) AS writers, count(a.xact_start) AS seen, "
    "min(a.xact_start) AS oldest "
    "FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'relation' AND l.relation = CAST(:table AS regclass) AND l.mode = 'RowExclusiveLock' "
    # pg_locks lists every database's locks, and databases made from one template share their tables' oids
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND l.granted AND l.pid <> pg_backend_pid()"
)


def below(column: Any, upto: int | None) -> tuple[Any, ...]:
    """SQL: *column* (a source's id) is at most *upto*, what :func:`settled_up_to` gave (nothing when None)."""
    return () if upto is None else (column <= upto,)


def settled_up_to(session: Session, table: Any) -> int | None:
    """The id of *table* up to which every row is committed or never will be (None: no bound, SQLite)."""
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return None
    taken = session.scalar(_TAKEN, {"table": table.name}) or 0  # first: ids up to it were handed out before …
    now, writers, seen, oldest = session.execute(_WRITERS, {"table": table.name}).one()  # … these writers were seen
    with _LOCK:  # the scheduler's and a worker's rollups may run in threads of one process
        notes = _NOTES.setdefault((str(bind.engine.url), table.name), deque())
        while notes and notes[-1][1] > taken:  # the sequence went back: another database of that name; forget
            notes.pop()
        if not writers:
            bound = taken
        else:
            # a writer whose start is hidden (another database role) counts as older than every note
            usable = [ids for at, ids in notes if seen == writers and at < oldest]
            bound = max(usable, default=0)
            while seen == writers and len(notes) > 1 and notes[1][0] < oldest:  # older than the last usable note
                notes.popleft()
        notes.append((now, taken))
        if len(notes) > KEPT:  # the oldest is kept: it may be the one a long writer leaves usable
            del notes[1]
    return min(bound, taken)


__all__ = ["KEPT", "below", "settled_up_to"]
