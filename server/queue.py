"""The task queue extension: Redis as transport, RQ for jobs.

Nothing in Redis is the only copy of anything: every job can be re-derived from
the database by the scheduler, so losing Redis loses no work.
"""

from __future__ import annotations

import gc
import logging
import signal
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import redis
from flask import Flask, current_app
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.job_lifecycle import call_exception_handlers

from .db import database_trouble
from .embedded_redis import EmbeddedRedis

log = logging.getLogger(__name__)

#: seconds a caller's mark in Redis outlives its last :meth:`TaskQueue.recovered` (refreshed at each)
MARK_TTL = 3600


class TaskQueue:
    """Flask extension: a Redis connection and the RQ queue, created on first use."""

    def __init__(self, app: Flask | None = None):
        self.app: Flask | None = None
        self.embedded: EmbeddedRedis | None = None
        self._redis: redis.Redis | None = None
        self._queue: Queue | None = None
        self._send_queue: Queue | None = None
        #: set when Redis could not be reached; :meth:`recovered` reports (once) that it answers again
        self.outage = False
        #: this instance's key in Redis (see :meth:`recovered`); None until first set
        self._mark: str | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        self.app = app
        app.extensions["nudge.queue"] = self

    @property
    def url(self) -> str:
        assert self.app is not None
        url = self.app.config.get("REDIS_URL")
        if url:
            return url
        if self.embedded is None:
            self.embedded = EmbeddedRedis(self.app.config["HOME"])
        return self.embedded.ensure()

    @property
    def redis(self) -> redis.Redis:
        if self._redis is None:
            self._redis = redis.Redis.from_url(self.url, socket_timeout=10, socket_connect_timeout=5)
        return self._redis

    @property
    def queue(self) -> Queue:
        if self._queue is None:
            assert self.app is not None
            self._queue = Queue(self.app.config["QUEUE_NAME"], connection=self.redis)
        return self._queue

    @property
    def send_queue(self) -> Queue:
        """Sends wait on their own queue, behind journey steps: slow providers never hold up the engine."""
        if self._send_queue is None:
            assert self.app is not None
            self._send_queue = Queue(f"{self.app.config['QUEUE_NAME']}-send", connection=self.redis)
        return self._send_queue

    @property
    def queues(self) -> list[Queue]:
        """What a worker listens to, in priority order."""
        return [self.queue, self.send_queue]

    def listen_to(self, which: str = "all") -> list[Queue]:
        """The queues of a worker that takes *which* jobs: ``all`` (engine first, then sends), ``engine`` or ``send``.

        :raises ValueError: for any other name.
        """
        chosen = {"all": self.queues, "engine": [self.queue], "send": [self.send_queue]}.get(which)
        if chosen is None:
            raise ValueError(f"unknown worker queues {which!r}: use all, engine or send")
        return chosen

    def enqueue_send(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
        return self.enqueue(func, *args, _queue=self.send_queue, **kwargs)

    def waiting(self, send: bool = False) -> int:
        """How many jobs wait on the engine queue (or the send queue); 0 when Redis cannot be asked."""
        try:
            return (self.send_queue if send else self.queue).count
        except redis.RedisError:
            self.outage = True
            return 0

    def reachable(self) -> bool:
        """Whether Redis answers now (an outage is remembered for :meth:`recovered`)."""
        try:
            self.redis.ping()
        except redis.RedisError as exc:
            if not self.outage:
                log.warning("Redis cannot be reached (%s); work waits in the database until it is back", exc)
            self.outage = True
            return False
        return True

    def recovered(self) -> bool:
        """True once after an outage, when Redis answers again, or when Redis has lost its data since the last call
        (flushed, or restarted without it, between two calls: no outage seen): jobs queued before may be lost.

        The loss is seen by a key of this instance's own, set at every call (with a TTL it outlives): missing
        after the first call means Redis lost it.
        """
        if self.outage:
            if not self.reachable():
                return False
            self.outage = False
            self._marked()
            return True
        mark = self._mark
        created = self._marked()
        if created and mark is not None:
            log.warning("Redis lost its data (flushed, or restarted without it): jobs queued before may be gone")
            return True
        return False

    def _marked(self) -> bool:
        """Set (and keep alive) this instance's key; return whether it had to be created (False on an error)."""
        assert self.app is not None
        if self._mark is None:
            self._mark = f"nudge:{self.app.config['QUEUE_NAME']}:mark:{uuid.uuid4().hex}"
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.set(self._mark, 1, nx=True, ex=MARK_TTL)
            pipe.expire(self._mark, MARK_TTL)
            created, _kept = pipe.execute()
        except redis.RedisError:
            self.outage = True
            return False
        return bool(created)

    def enqueue(
        self,
        func: Callable[..., Any],
        *args: Any,
        job_id: str | None = None,
        _queue: Queue | None = None,
        **kwargs: Any,
    ) -> bool:
        """Enqueue a job; a Redis outage is logged, not raised — the scheduler re-enqueues from the DB.

        :return: whether the job is on the queue.
        """
        try:
            (_queue or self.queue).enqueue(func, *args, job_id=job_id, **kwargs)
        except redis.RedisError as exc:
            self.outage = True
            log.warning("could not enqueue %s (%s); the scheduler will pick the work up from the database", func, exc)
            return False
        return True

    def enqueue_many(self, func: Callable[..., Any], arg_lists: list[tuple[Any, ...]], *, send: bool = False) -> bool:
        """Enqueue one job per argument tuple in one Redis round trip (a pipeline); an outage as :meth:`enqueue`.

        :param send: on the send queue (else the engine's).
        :return: whether the jobs are on the queue.
        """
        queue = self.send_queue if send else self.queue
        try:
            with self.redis.pipeline() as pipe:
                for args in arg_lists:
                    queue.enqueue_call(func, args=args, pipeline=pipe)
                pipe.execute()
        except redis.RedisError as exc:
            self.outage = True
            log.warning("could not enqueue %s (%s); the scheduler will pick the work up from the database", func, exc)
            return False
        return True

    def forget_failed(self, needles: Sequence[str]) -> int:
        """Delete the failed-job records (arguments, traceback, results) that mention any of *needles*: an erased
        contact's addresses must not stay readable in Redis (RQ keeps failed jobs for a year). A Redis outage is
        logged, not raised.

        :return: how many were deleted.
        """
        needles = [n for n in needles if n]
        if not needles:
            return 0
        removed = 0
        try:
            for queue in self.queues:
                registry = queue.failed_job_registry
                for job in Job.fetch_many(registry.get_job_ids(), connection=self.redis):
                    if job is None:
                        continue
                    result = job.latest_result()
                    try:
                        called = f"{job.args!r} {job.kwargs!r}"
                    except Exception:  # arguments that no longer unpickle: judged by their traceback alone
                        called = ""
                    text = f"{called} {result.exc_string if result is not None else ''}"
                    if any(needle in text for needle in needles):
                        registry.remove(job, delete_job=True)
                        removed += 1
        except redis.RedisError as exc:
            self.outage = True
            log.warning("could not clear failed jobs of an erased contact (%s); they expire after a year", exc)
        return removed

    def disconnect(self) -> None:
        """Close the connections to Redis (the next use opens new ones); an embedded Redis keeps running."""
        if self._redis is not None:
            self._redis.connection_pool.disconnect()

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
        self._redis = self._queue = self._send_queue = None
        if self.embedded is not None:
            self.embedded.stop()
            self.embedded = None


def get_queue(app: Flask | None = None) -> TaskQueue:
    return (app or current_app).extensions["nudge.queue"]


#: ``app.extensions`` key of the callables (taking the app) a worker calls before each job, in its app context
BEFORE_JOB = "nudge.before_job"


class AppWorker(SimpleWorker):
    """An RQ worker that runs every job inside a fresh app context of the app that built it."""

    #: RQ's own back-off while Redis is away tops out here (RQ: 60 s), so work resumes soon after it is back
    max_connection_wait_time = 4.0

    def __init__(self, *args: Any, app: Flask, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.flask_app = app

    def execute_job(self, job: Any, queue: Queue) -> None:
        with self.flask_app.app_context():
            for prepare in self.flask_app.extensions.get(BEFORE_JOB, ()):
                try:
                    prepare(self.flask_app)  # e.g. settings changed in the admin UI apply from the next job on
                except Exception as exc:
                    # the database away, say: raised here, outside the job, it would end RQ's loop and leave the
                    # job in the started registry; the job runs (and fails, and is retried) as every job does
                    log.warning("preparing job %s failed (%s); running it with the settings read before", job.id, exc)
            super().execute_job(job, queue)

    def handle_exception(self, job: Any, *exc_info: Any) -> None:
        """A job the database failed (away, busy or full: its state, not a bug) is one warning line with the driver's
        words, not RQ's error with a traceback (a failover would fill the log with them). It fails as any job does
        (the failed registry, the exception handlers); the engine's work stays in the database, and the scheduler
        hands it out again (``REQUEUE_AFTER``). Any other error is logged by RQ."""
        trouble = database_trouble(exc_info[1]) if len(exc_info) > 1 and exc_info[1] is not None else None
        if trouble is None:
            super().handle_exception(job, *exc_info)
            return
        try:
            name = job.func_name
        except Exception:  # a job that cannot be read: RQ's own guard
            name = "<unreadable>"
        log.warning("job %s (%s) failed: %s", job.id, name, trouble)
        call_exception_handlers(self._exc_handlers, job, *exc_info)


#: seconds between attempts to reach Redis again, doubling up to the cap
RECONNECT_FIRST, RECONNECT_CAP = 0.5, 4.0


def serve(app: Flask, burst: bool = False, queues: str = "all") -> None:
    """Run a worker until asked to stop, through Redis outages: RQ's loop gives up when Redis goes away
    in the middle of a job (or is away at start); a new one starts once Redis answers, with back-off.

    Jobs are safe to lose or repeat (the database says what is done), so nothing is lost meanwhile.
    :param queues: which jobs it takes (:meth:`TaskQueue.listen_to`): ``nudge up`` runs an ``engine`` worker
        and a ``send`` worker side by side, so that sends never wait behind a stream of events.
    """
    tq = get_queue(app)
    stop = {"asked": False}
    settle_heap()

    def ask_stop(_signum: int, _frame: object) -> None:
        stop["asked"] = True

    signal.signal(signal.SIGTERM, ask_stop)
    signal.signal(signal.SIGINT, ask_stop)
    delay = RECONNECT_FIRST
    while not stop["asked"]:
        if not tq.reachable():
            if burst:  # nothing to wait for: a burst worker does what is queued now, and Redis holds nothing
                return
            time.sleep(delay)
            delay = min(delay * 2, RECONNECT_CAP)
            continue
        delay = RECONNECT_FIRST
        worker = AppWorker(tq.listen_to(queues), connection=tq.redis, app=app)
        try:
            worker.work(burst=burst, logging_level=app.config["LOG_LEVEL"])
        except redis.RedisError as exc:  # raised by RQ's own clean-up when Redis is gone
            log.warning("the worker lost Redis (%s); starting again once it answers", exc)
        finally:
            _stop_listening(worker)
            # RQ's handlers belong to the finished worker: a signal now stops this loop
            signal.signal(signal.SIGTERM, ask_stop)
            signal.signal(signal.SIGINT, ask_stop)
        if burst or worker._stop_requested or worker._shutdown_requested_date is not None:
            return
        if not stop["asked"]:
            log.warning("the worker stopped (Redis went away?); starting again once Redis answers")
            time.sleep(RECONNECT_FIRST)


def settle_heap() -> None:
    """Put the objects built so far (modules, the app, its plugins and caches) out of the garbage collector's walk.

    A worker's jobs make many short-lived rows; each full collection would otherwise walk the whole start-up heap
    again (about a fifth of an event batch's CPU time, measured). What is made later is collected as usual.
    """
    gc.collect()
    gc.freeze()


def _stop_listening(worker: AppWorker) -> None:
    """End the worker's pub/sub thread, which would otherwise retry its connection forever in the background."""
    thread = getattr(worker, "pubsub_thread", None)
    if thread is not None and thread.is_alive():
        thread.stop()
