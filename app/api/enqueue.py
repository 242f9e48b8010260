"""The end of a POST that made chunks: commit them, send their jobs to Redis, record that."""

from __future__ import annotations

from collections.abc import Sequence

from redis import Redis
from sqlalchemy.orm import Session

from app.kernel.config import Settings
from app.kernel.queue import ChunkRoute, enqueue_chunks, mark_enqueued


def commit_and_enqueue(
    session: Session, redis: Redis, settings: Settings, routes: Sequence[ChunkRoute]
) -> None:
    """Commit the request's work, then queue its chunks and mark them sent. Postgres holds the
    work before Redis is asked: if Redis fails here, the reaper sends the unconfirmed chunks."""
    session.commit()
    if not routes:
        return
    enqueue_chunks(
        redis,
        settings.queue_name,
        routes,
        timeout_s=settings.chunk_timeout_s,
        ttl_s=settings.queued_job_ttl_s,
    )
    mark_enqueued(session, routes)
    session.commit()
