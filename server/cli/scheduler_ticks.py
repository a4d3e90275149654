"""``nudge scheduler``'s tick, and what a failed one logs: a database outage once, not a traceback every tick."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("server.scheduler")


class Ticks:
    """The scheduler's ticks on *app*: due work moved onto the queue, then a few batches of the cleanup.

    A tick the database fails (away, read-only, full or busy: :func:`server.db.database_trouble`) logs one warning
    when the outage starts, debug lines while it lasts, and one info line with the count of failed ticks once a
    tick succeeds again. Any other failure is a bug: its traceback is logged every time.
    """

    def __init__(self, app: Any) -> None:
        from .cleanup import scheduled_cleanup

        self.app = app
        self.cleanup = scheduled_cleanup(app)
        #: the ticks the database failed since the last one that succeeded
        self.failed = 0

    def tick(self, finish_cleanup: bool = False) -> None:
        """Run one tick; never raises (the loop goes on, and the next tick tries again).

        :param finish_cleanup: run a due cleanup whole (``nudge scheduler --once``), not a few batches of it.
        """
        from ..db import database_trouble
        from ..engine.jobs import requeue_due

        interval = self.app.config["SCHEDULER_INTERVAL"]
        try:
            self._probe()
            with self.app.app_context():
                counts = requeue_due()
                self.cleanup(finish_cleanup)
        except Exception as exc:  # a DB or Redis hiccup must not end the loop
            trouble = database_trouble(exc)
            if trouble is None:
                log.exception("scheduler tick failed; retrying in %.1fs", interval)
                return
            if self.failed == 0:
                log.warning(
                    "scheduler tick failed: %s; retrying every %.1fs until the database is back", trouble, interval
                )
            else:
                log.debug("scheduler tick failed again: %s", trouble)
            self.failed += 1
            return
        if self.failed:
            log.info("database reachable again after %d failed ticks", self.failed)
            self.failed = 0
        if any(counts.values()):
            log.info("requeued %s", counts)

    def _probe(self) -> None:
        """Raise the database's error when it does not answer (one round trip): the stats rollup that starts a tick
        logs its own failure, with a traceback, and carries on to the step that fails the tick."""
        from ..db import READ_ONLY, get_db

        with get_db(self.app).engine.connect() as conn:
            conn.execution_options(**{READ_ONLY: True}).exec_driver_sql("SELECT 1")  # SQLite: no write lock taken


__all__ = ["Ticks"]
