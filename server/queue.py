"""The task queue extension: Redis as transport, RQ for jobs.

Nothing in Redis is the only copy of anything: every job can be re-derived from
the database by the scheduler, so losing Redis loses no work.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import redis
from flask import Flask, current_app
from rq import Queue, SimpleWorker

from .embedded_redis import EmbeddedRedis

log = logging.getLogger(__name__)


class TaskQueue:
    """Flask extension: a Redis connection and the RQ queue, created on first use."""

    def __init__(self, app: Flask | None = None):
        self.app: Flask | None = None
        self.embedded: EmbeddedRedis | None = None
        self._redis: redis.Redis | None = None
        self._queue: Queue | None = None
        self._send_queue: Queue | None = None
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

    def enqueue_send(self, func: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> None:
        self.enqueue(func, *args, _queue=self.send_queue, **kwargs)

    def waiting(self, send: bool = False) -> int:
        """How many jobs wait on the engine queue (or the send queue); 0 when Redis cannot be asked."""
        try:
            return (self.send_queue if send else self.queue).count
        except redis.RedisError:
            return 0

    def enqueue(self, func: Callable[..., Any] | str, *args: Any, job_id: str | None = None,
                _queue: Queue | None = None, **kwargs: Any) -> None:
        """Enqueue a job; a Redis outage is logged, not raised — the scheduler re-enqueues from the DB."""
        try:
            (_queue or self.queue).enqueue(func, *args, job_id=job_id, **kwargs)
        except redis.RedisError as exc:
            log.warning("could not enqueue %s (%s); the scheduler will pick the work up from the database", func, exc)

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
        self._redis = self._queue = self._send_queue = None
        if self.embedded is not None:
            self.embedded.stop()
            self.embedded = None


def get_queue(app: Flask | None = None) -> TaskQueue:
    return (app or current_app).extensions["nudge.queue"]


class AppWorker(SimpleWorker):
    """An RQ worker that runs every job inside a fresh app context of the app that built it."""

    def __init__(self, *args: Any, app: Flask, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.flask_app = app

    def execute_job(self, job: Any, queue: Queue) -> None:
        with self.flask_app.app_context():
            super().execute_job(job, queue)
