"""Make Redis carry every chunk Postgres says is waiting (after a lost enqueue or a restart)."""

from __future__ import annotations

import logging

from rq import Queue
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.db.base import utcnow
from app.models import Batch, Chunk
from app.models.statuses import TERMINAL_BATCH_STATUSES, ChunkStatus
from app.services.queue import chunk_ids_in_queue, enqueue_chunks

log = logging.getLogger(__name__)


def requeue_lost_chunks(
    session_factory: sessionmaker[Session], queue: Queue, *, timeout_s: int
) -> int:
    """Enqueue queued chunks missing from Redis and running chunks whose lease ran out."""
    with session_factory.begin() as session:
        session.execute(
            update(Chunk)
            .where(Chunk.status == ChunkStatus.RUNNING, Chunk.lease_expires_at < utcnow())
            .values(status=ChunkStatus.QUEUED, lease_expires_at=None)
        )
        waiting = list(
            session.scalars(
                select(Chunk.id)
                .join(Batch, Batch.id == Chunk.batch_id)
                .where(
                    Chunk.status == ChunkStatus.QUEUED,
                    Batch.status.not_in([str(s) for s in TERMINAL_BATCH_STATUSES]),
                )
                .order_by(Chunk.id)
            )
        )
    present = chunk_ids_in_queue(queue, waiting) if waiting else set()
    lost = [chunk_id for chunk_id in waiting if chunk_id not in present]
    if lost:
        log.info("re-enqueuing %d chunk(s) missing from the queue", len(lost))
    return enqueue_chunks(queue, lost, timeout_s=timeout_s)
