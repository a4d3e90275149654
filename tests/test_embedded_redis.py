"""The embedded Redis (``nudge up``'s default) keeps what is queued across a restart: it snapshots on shutdown."""

from __future__ import annotations

import redis

from server.embedded_redis import EmbeddedRedis


def test_what_is_queued_outlives_a_restart_of_the_embedded_redis(tmp_path):
    server = EmbeddedRedis(tmp_path)
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        assert client.config_get("save") == {"save": "60 1"}
        client.rpush("rq:queue:default", "job-1")
        client.close()
        server.stop()  # SIGTERM: Redis saves, then exits
        assert (tmp_path / "redis.rdb").exists()
        server.start()
        client = redis.Redis.from_url(server.url)
        assert client.lrange("rq:queue:default", 0, -1) == [b"job-1"]
        client.close()
    finally:
        server.stop()
