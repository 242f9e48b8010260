"""The reaper: makes Redis carry every chunk Postgres says is waiting, and finishes what is done.

Each pass (1) puts running chunks whose lease expired back in the queue (or fails them when that
was their last attempt), (2) re-enqueues queued chunks Redis may not carry, and (3) settles
unfinished batches with no open chunk left. Every worker runs it on start and then every
REAPER_INTERVAL_S; `findap reaper` runs it alone. Reapers running at once are harmless: chunk
and batch rows are taken with `FOR UPDATE SKIP LOCKED` and re-checked, and a chunk enqueued
twice is claimed once (the second delivery finds it running or done, and skips).

A pass reads only what may need it, never every queued chunk: a queued chunk records when its
job went to Redis (`enqueued_at`, null until confirmed), so the chunks to send again are those
never confirmed (an enqueue failed, a lease expired, a run gave the chunk back) and those sent
longer ago than QUEUED_JOB_TTL_S (the job expired unclaimed), found through a partial index.
Redis losing everything (flushed, restarted without persistence) shows as a missing marker key:
then every queued chunk counts as unconfirmed, once. A job lost any other way (a queue emptied
by hand) is sent again when its TTL would have run out.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.kernel.batch_options import JudgeOptions, PolicyOptions
from app.kernel.config import Settings
from app.kernel.context import ProcessContext
from app.kernel.db.base import utcnow
from app.kernel.db.retry import first_line, is_connection_error
from app.kernel.models import Batch, Chunk
from app.kernel.models.statuses import (
    IDLE_BATCH_STATUSES,
    OPEN_RUN_STATUSES,
    BatchStatus,
    ChunkStage,
    RunStatus,
)
from app.kernel.queue import (
    ChunkRoute,
    ModelRef,
    enqueue_chunks,
    mark_enqueued,
    redis_intact_key,
)
from workers import chunk_store

log = logging.getLogger(__name__)

RESENT_PER_PASS = 5_000
"""Most chunks one pass sends again (a Redis that lost everything is refilled over passes)."""


@dataclass
class Reaped:
    """What one pass did."""

    expired: int = 0
    """Running chunks whose lease ran out, put back in the queue."""
    failed: int = 0
    """Running chunks whose lease ran out on their last attempt, marked failed."""
    enqueued: int = 0
    """Queued chunks sent to Redis again."""
    settled: int = 0
    """Batches finished because no chunk of theirs was open any more."""
    redis_lost: bool = False
    """Redis had lost its data since the last pass: every queued chunk is sent again."""


def reap(context: ProcessContext) -> Reaped:
    """One pass: expired leases, chunks Redis lost, batches left unsettled."""
    reaped = Reaped()
    settings = context.settings
    reclaim_expired_chunks(context.session_factory, settings, reaped)
    reaped.redis_lost = unconfirm_all_if_redis_lost(
        context.session_factory, context.redis, settings.queue_name
    )
    reaped.enqueued = enqueue_lost_chunks(context.session_factory, context.redis, settings)
    reaped.settled = settle_idle_batches(context.session_factory)
    if reaped != Reaped():
        log.info("reaper: %s", reaped)
    return reaped


def reclaim_expired_chunks(
    session_factory: sessionmaker[Session], settings: Settings, reaped: Reaped
) -> None:
    """Put back (or fail) each running chunk whose lease ran out (to be sent again unconfirmed)."""
    now = utcnow()
    with session_factory() as session:
        expired = list(
            session.scalars(
                select(Chunk.id)
                .where(Chunk.status == RunStatus.RUNNING, Chunk.lease_expires_at < now)
                .order_by(Chunk.id)
            )
        )
    for chunk_id in expired:
        # One short transaction per chunk: it locks the batch, then the chunk, as workers do.
        with session_factory.begin() as session:
            status = chunk_store.reclaim_expired(
                session, chunk_id, now=now, max_attempts=settings.chunk_max_attempts
            )
        if status == RunStatus.QUEUED:
            log.warning("chunk %s: lease expired; queued again", chunk_id)
            reaped.expired += 1
        elif status == RunStatus.FAILED:
            log.warning("chunk %s: lease expired on its last attempt; failed", chunk_id)
            reaped.failed += 1


def unconfirm_all_if_redis_lost(
    session_factory: sessionmaker[Session], redis: Redis, prefix: str
) -> bool:
    """If Redis lost its data since a reaper last marked it (the marker key is gone), no queued
    chunk's job can be trusted to be there: mark them all unconfirmed, then mark Redis. True if
    it had lost them (or is new)."""
    marker = redis_intact_key(prefix)
    if redis.exists(marker):
        return False
    with session_factory.begin() as session:
        session.execute(
            update(Chunk)
            .where(Chunk.status == RunStatus.QUEUED, Chunk.enqueued_at.is_not(None))
            .values(enqueued_at=None)
        )
    redis.set(marker, utcnow().isoformat())
    log.warning("reaper: Redis holds none of its jobs (new, flushed or restarted); resending")
    return True


def enqueue_lost_chunks(
    session_factory: sessionmaker[Session], redis: Redis, settings: Settings
) -> int:
    """Send again the queued chunks (of unfinished batches, not waiting ones) whose job Redis
    may not carry: never confirmed, or sent longer ago than QUEUED_JOB_TTL_S; then confirm
    them."""
    expired_before = utcnow() - timedelta(seconds=settings.queued_job_ttl_s)
    with session_factory() as session:
        waiting = session.execute(
            select(Chunk.id, Chunk.stage, Batch.policy, Batch.judge)
            .join(Batch, Batch.id == Chunk.batch_id)
            .where(
                Chunk.status == RunStatus.QUEUED,
                or_(Chunk.enqueued_at.is_(None), Chunk.enqueued_at < expired_before),
                Batch.status.not_in([str(s) for s in IDLE_BATCH_STATUSES]),
            )
            .order_by(Chunk.id)
            .limit(RESENT_PER_PASS)
        ).all()
    if not waiting:
        return 0
    routes = [
        ChunkRoute(
            chunk_id,
            ChunkStage(stage),
            ModelRef.of(
                PolicyOptions.model_validate(policy)
                if stage == ChunkStage.SAMPLE
                else JudgeOptions.model_validate(judge)
            ),
        )
        for chunk_id, stage, policy, judge in waiting
    ]
    log.info("re-enqueuing %d chunk(s) missing from the queues", len(routes))
    sent = enqueue_chunks(
        redis,
        settings.queue_name,
        routes,
        timeout_s=settings.chunk_timeout_s,
        ttl_s=settings.queued_job_ttl_s,
        resend=True,
    )
    with session_factory.begin() as session:
        mark_enqueued(session, routes)
    return sent


def settle_idle_batches(session_factory: sessionmaker[Session]) -> int:
    """Finish unfinished batches none of whose chunks is queued or running any more."""
    open_chunk = exists().where(
        Chunk.batch_id == Batch.id, Chunk.status.in_([str(s) for s in OPEN_RUN_STATUSES])
    )
    unfinished = [
        BatchStatus.QUEUED,
        BatchStatus.IN_PROGRESS,
        BatchStatus.FINALIZING,
        BatchStatus.CANCELLING,
    ]
    with session_factory() as session:
        idle = list(
            session.scalars(
                select(Batch.id).where(Batch.status.in_([str(s) for s in unfinished]), ~open_chunk)
            )
        )
    settled = 0
    for batch_id in idle:
        with session_factory.begin() as session:
            settled += chunk_store.settle_idle_batch(session, batch_id)
    return settled


def reap_quietly(context: ProcessContext) -> None:
    """A pass that logs rather than raises: Postgres or Redis may be down; the next pass retries."""
    try:
        reap(context)
    except (RedisConnectionError, RedisTimeoutError) as error:
        log.warning("reaper: queue unavailable (%s); the next pass retries", first_line(error))
    except Exception as error:
        if is_connection_error(error):
            log.warning(
                "reaper: database unavailable (%s); the next pass retries", first_line(error)
            )
        else:
            log.exception("reaper pass failed; the next one retries")


class ReaperThread:
    """A daemon thread reaping every REAPER_INTERVAL_S (the first pass after one interval)."""

    def __init__(self, context: ProcessContext) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(context,), name="reaper", daemon=True
        )

    def start(self) -> ReaperThread:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self, context: ProcessContext) -> None:
        while not self._stop.wait(context.settings.reaper_interval_s):
            reap_quietly(context)


def run_reaper(settings: Settings, *, once: bool = False) -> Reaped | None:
    """`findap reaper`: one pass (once), or a pass every REAPER_INTERVAL_S until interrupted."""
    settings.require_urls()
    with ProcessContext.open(settings) as context:
        if once:
            return reap(context)
        while True:
            reap_quietly(context)
            time.sleep(settings.reaper_interval_s)
