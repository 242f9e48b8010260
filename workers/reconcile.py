"""Make Redis carry every chunk Postgres says is waiting (after a lost enqueue or a restart)."""

from __future__ import annotations

import logging

from redis import Redis
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.db.base import utcnow
from app.models import Batch, Chunk
from app.models.statuses import TERMINAL_BATCH_STATUSES, ChunkStage, ChunkStatus
from app.services.queue import ChunkRoute, ModelRef, enqueue_chunks, routes_in_queue

log = logging.getLogger(__name__)


def requeue_lost_chunks(
    session_factory: sessionmaker[Session], redis: Redis, settings: Settings
) -> int:
    """Enqueue queued chunks missing from Redis and running chunks whose lease ran out."""
    with session_factory.begin() as session:
        session.execute(
            update(Chunk)
            .where(Chunk.status == ChunkStatus.RUNNING, Chunk.lease_expires_at < utcnow())
            .values(status=ChunkStatus.QUEUED, lease_expires_at=None)
        )
        waiting = session.execute(
            select(Chunk.id, Chunk.stage, Batch.policy, Batch.judge)
            .join(Batch, Batch.id == Chunk.batch_id)
            .where(
                Chunk.status == ChunkStatus.QUEUED,
                Batch.status.not_in([str(s) for s in TERMINAL_BATCH_STATUSES]),
            )
            .order_by(Chunk.id)
        ).all()
    routes = [
        ChunkRoute(
            chunk_id,
            ChunkStage(stage),
            ModelRef.of(policy if stage == ChunkStage.SAMPLE else judge),
        )
        for chunk_id, stage, policy, judge in waiting
    ]
    present = routes_in_queue(redis, routes) if routes else set()
    lost = [route for route in routes if route not in present]
    if lost:
        log.info("re-enqueuing %d chunk(s) missing from the queues", len(lost))
    return enqueue_chunks(redis, settings.queue_name, lost, timeout_s=settings.chunk_timeout_s)
