"""The ingest writer's SQLite checkpoints, run by a thread of their own instead of inside the write's turn.

SQLite copies the write-ahead log back into the database file (a checkpoint) from the connection whose commit
finds the WAL over ``wal_autocheckpoint`` pages (1,000 by default), inside that commit. For the ingest's writer
(:func:`.ingest.store_plain_apart`) that was inside the process's write turn: every fifth group of batches or so
waited 5-25 ms by the clock (the copy and two fsyncs) while the next group's requests queued behind it.

The writer now commits with ``wal_autocheckpoint`` at :data:`WRITER_AUTOCHECKPOINT` pages, and tells this
process's :class:`WalCheckpointer` how many events it stored; every :data:`CHECKPOINT_PAGES` pages or so (an
estimate from the events) the checkpointer's thread runs a ``PASSIVE`` checkpoint on a connection of its own while
the writer goes on (SQLite lets one connection checkpoint while another writes; the driver releases the GIL
meanwhile). A ``PASSIVE`` checkpoint copies the frames committed before it began; the WAL starts again from its
beginning only when one has copied every frame before the next write begins, which a steady stream of commits
can prevent: then the WAL grows until the writer's own autocheckpoint copies the little the thread has not (and
the WAL restarts). That autocheckpoint also bounds the WAL should the thread fall behind or
fail. Other connections and processes (the engine's workers) keep SQLite's default.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["CHECKPOINT_PAGES", "WRITER_AUTOCHECKPOINT", "WalCheckpointer"]

#: WAL pages (estimated) the writer commits between two checkpoints of the thread. Fewer checkpoints copy a page
#: rewritten by many commits (a busy contact's page of the events' contact index) fewer times: the thread's CPU
#: was ~3.5 µs an event checkpointing every ~600 pages of batches of the same 100 contacts, ~1.4 every ~2,400
CHECKPOINT_PAGES = 3000
#: a commit's pages besides one an event (the events' table and queue index, their parents): for the estimate
COMMIT_PAGES = 3
#: the writer's own ``wal_autocheckpoint`` (pages, 40 MB): the WAL's bound, reached only when the WAL could not
#: start again (or the thread falls behind)
WRITER_AUTOCHECKPOINT = 10000


class WalCheckpointer:
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` in a daemon thread every :data:`CHECKPOINT_PAGES` pages written.

    :param connection: the thread's own DBAPI connection to the database (closed with the checkpointer).
    """

    def __init__(self, connection: Any):
        self._connection = connection
        self._written = 0
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        #: set after each checkpoint the thread ran (for those who must know one has: tests, diagnostics)
        self.ran = threading.Event()

    def stored(self, events: int) -> None:
        """Count *events* just committed by the writer (called in its write turn); wake the thread when due."""
        self._written += events + COMMIT_PAGES  # one page an event at most (its contact's) beyond the commit's own
        if self._written < CHECKPOINT_PAGES or self._stopping:
            return
        self._written = 0
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="nudge-wal-checkpoints", daemon=True)
            self._thread.start()
        self._wake.set()

    def close(self) -> None:
        """Stop the thread (after the checkpoint it may be running) and close its connection."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._connection.close()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                self.ran.set()
            except Exception as exc:  # the writer's own autocheckpoint still bounds the WAL
                log.warning("WAL checkpoint failed (%s); the ingest's writer checkpoints on its own", exc)
