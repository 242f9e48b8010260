"""The chunk's reads and writes: short transactions, idempotent inserts, status changes.

A running chunk is held under a lease (worker name and attempt number): only its holder renews,
hands on or finishes it, so a worker whose lease ran out (and whose chunk another worker took)
cannot overwrite the newer run's state.

Lock order, everywhere: a batch's row before any of its chunks' rows, chunks by id. Cancelling
(app/services/batches.py) locks the same way, so a cancel and claims never deadlock.

A chunk that becomes queued has `enqueued_at` null until whoever sends its job to Redis
confirms it (app.kernel.queue.mark_enqueued); the reaper sends the unconfirmed ones again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.kernel.batch_options import BatchSettings
from app.kernel.chunk_stats import ChunkStats
from app.kernel.db.base import utcnow
from app.kernel.models import Batch, Chunk, PreferencePair, Prompt, Sample, Verdict
from app.kernel.models.statuses import (
    OPEN_RUN_STATUSES,
    TERMINAL_BATCH_STATUSES,
    BatchStatus,
    ChunkStage,
    RunStatus,
)


@dataclass(frozen=True)
class Lease:
    """Who runs a chunk: the worker and the attempt it claimed (attempts count every claim)."""

    chunk_id: int
    worker_name: str
    attempt: int


@dataclass(frozen=True)
class ChunkWork:
    """A claimed chunk: its lease, its batch's settings and its prompts."""

    lease: Lease
    chunk_id: int
    chunk_index: int
    batch_id: str
    project_id: str
    options: BatchSettings
    prompts: list[Prompt]


def claim_chunk(
    session: Session,
    chunk_id: int,
    *,
    stage: ChunkStage,
    worker_name: str,
    lease_s: float,
    max_attempts: int,
) -> ChunkWork | None:
    """Mark the queued chunk running at this stage and return its work, or None if it must not
    run (claimed already, at another stage, cancelled, or out of attempts: then marked failed)."""
    batch = lock_batch_of(session, chunk_id)
    if batch is None:
        return None
    chunk = session.scalars(select(Chunk).where(Chunk.id == chunk_id).with_for_update()).one()
    # A running chunk is someone's: it comes back to the queue only through the reaper.
    if chunk.status != RunStatus.QUEUED or chunk.stage != stage:
        return None
    if batch.status == BatchStatus.WAITING:  # its model does not exist yet
        return None
    if stage == ChunkStage.SAMPLE and batch.status in (
        BatchStatus.CANCELLING,
        BatchStatus.CANCELLED,
    ):
        chunk.status = RunStatus.CANCELLED
        chunk.finished_at = utcnow()
        settle_batch(session, batch)
        return None
    if chunk.attempts >= max_attempts:
        fail_chunk(session, chunk, batch, gave_up(chunk, max_attempts, chunk.error))
        return None
    now = utcnow()
    chunk.status = RunStatus.RUNNING
    chunk.attempts += 1
    chunk.worker_name = worker_name
    chunk.started_at = chunk.started_at or now
    chunk.lease_expires_at = now + timedelta(seconds=lease_s)
    if batch.status == BatchStatus.QUEUED:
        batch.status = BatchStatus.IN_PROGRESS
        batch.in_progress_at = now
    prompts = list(session.scalars(select(Prompt).where(Prompt.chunk_id == chunk_id)))
    prompts.sort(key=lambda prompt: prompt.index)
    return ChunkWork(
        lease=Lease(chunk.id, worker_name, chunk.attempts),
        chunk_id=chunk.id,
        chunk_index=chunk.index,
        batch_id=batch.id,
        project_id=batch.project_id,
        options=batch.options,
        prompts=prompts,
    )


def lock_batch_of(session: Session, chunk_id: int, *, skip_locked: bool = False) -> Batch | None:
    """Lock the batch of this chunk (None if there is no such chunk, or with skip_locked, when
    another transaction holds the batch): the first lock on a batch's rows, before its chunks'."""
    batch_id = select(Chunk.batch_id).where(Chunk.id == chunk_id).scalar_subquery()
    return session.scalars(
        select(Batch).where(Batch.id == batch_id).with_for_update(skip_locked=skip_locked)
    ).first()


def gave_up(chunk: Chunk, max_attempts: int, error: str | None) -> str:
    """A failed chunk's error: its last run's, and how many runs it had."""
    last = error or f"{chunk.stage}: failed"
    return f"{last} (gave up after {chunk.attempts} of {max_attempts} attempts)"


def still_under_lease(lease: Lease) -> ColumnElement[bool]:
    """The chunk is still running under this lease (nobody re-queued it meanwhile)."""
    return and_(
        Chunk.id == lease.chunk_id,
        Chunk.status == RunStatus.RUNNING,
        Chunk.worker_name == lease.worker_name,
        Chunk.attempts == lease.attempt,
    )


def lock_held_chunk(session: Session, lease: Lease) -> Chunk | None:
    return session.scalars(select(Chunk).where(still_under_lease(lease)).with_for_update()).first()


def renew_lease(session: Session, lease: Lease, *, lease_s: float) -> bool:
    """Push the lease's end lease_s ahead; False when the chunk is no longer this lease's."""
    result = session.execute(
        update(Chunk)
        .where(still_under_lease(lease))
        .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def hand_to_judge(session: Session, lease: Lease, *, stats: ChunkStats) -> bool:
    """Sampling is done: the chunk now waits in its judge's queue, with fresh attempts.
    False (and nothing changed) when the lease was lost."""
    chunk = lock_held_chunk(session, lease)
    if chunk is None:
        return False
    chunk.status = RunStatus.QUEUED
    chunk.stage = ChunkStage.JUDGE
    chunk.attempts = 0
    chunk.error = None
    chunk.lease_expires_at = None
    chunk.enqueued_at = None
    chunk.stats = with_stats(chunk, stats)
    return True


def finish_chunk(
    session: Session,
    chunk_id: int,
    *,
    stats: ChunkStats | None,
    error: str | None,
    lease: Lease | None = None,
) -> bool:
    """Record the chunk's end and move the batch on when it was the last open chunk. With a
    lease, only while the chunk is still that lease's (False, nothing changed, otherwise)."""
    batch = lock_batch_of(session, chunk_id)
    if batch is None:
        return False
    if lease is None:
        chunk = session.scalars(select(Chunk).where(Chunk.id == chunk_id).with_for_update()).one()
    else:
        found = lock_held_chunk(session, lease)
        if found is None:
            return False
        chunk = found
    if stats is not None:
        chunk.stats = with_stats(chunk, stats)
    if error:
        fail_chunk(session, chunk, batch, error)
        return True
    chunk.status = RunStatus.SUCCEEDED
    chunk.error = None
    chunk.finished_at = utcnow()
    chunk.lease_expires_at = None
    settle_batch(session, batch)
    return True


def release_after_error(
    session: Session, lease: Lease, *, error: str, max_attempts: int
) -> RunStatus | None:
    """A run of the chunk raised: back to the queue (QUEUED) while attempts are left, else
    failed (FAILED) with the error; None when the chunk is no longer this lease's."""
    lock_batch_of(session, lease.chunk_id)
    chunk = lock_held_chunk(session, lease)
    if chunk is None:
        return None
    return requeue_or_fail(session, chunk, error=error, max_attempts=max_attempts)


def reclaim_expired(
    session: Session, chunk_id: int, *, now: datetime, max_attempts: int
) -> RunStatus | None:
    """A running chunk whose lease ran out (its worker was killed, hung, or cut off from the
    database): back to the queue, or failed when that was its last attempt. None when it is
    not (or no longer) expired, or another reaper (or a worker) holds it right now."""
    if lock_batch_of(session, chunk_id, skip_locked=True) is None:
        return None
    chunk = session.scalars(
        select(Chunk)
        .where(
            Chunk.id == chunk_id,
            Chunk.status == RunStatus.RUNNING,
            Chunk.lease_expires_at < now,
        )
        .with_for_update(skip_locked=True)
    ).first()
    if chunk is None:
        return None
    error = (
        f"{chunk.stage}: lease expired on attempt {chunk.attempts} "
        f"(worker {chunk.worker_name} stopped renewing it: killed, hung or cut off)"
    )
    return requeue_or_fail(session, chunk, error=error, max_attempts=max_attempts)


def release_cut_off_chunks(session: Session, *, max_attempts: int) -> int:
    """Every running chunk was cut off (the only worker of embedded services restarts): each
    goes back to the queue, or fails if that was its last attempt. How many were running."""
    running_batches = select(Chunk.batch_id).where(Chunk.status == RunStatus.RUNNING)
    session.scalars(
        select(Batch.id).where(Batch.id.in_(running_batches)).order_by(Batch.id).with_for_update()
    ).all()
    running = session.scalars(
        select(Chunk).where(Chunk.status == RunStatus.RUNNING).order_by(Chunk.id).with_for_update()
    ).all()
    for chunk in running:
        error = f"{chunk.stage}: cut off on attempt {chunk.attempts} (findap was stopped)"
        requeue_or_fail(session, chunk, error=error, max_attempts=max_attempts)
    return len(running)


def requeue_or_fail(session: Session, chunk: Chunk, *, error: str, max_attempts: int) -> RunStatus:
    """The one way a (locked) chunk whose run ended badly moves on: back to the queue while it
    has attempts left, else failed with its error (its batch may then be settled)."""
    if chunk.attempts < max_attempts:
        chunk.status = RunStatus.QUEUED
        chunk.error = error
        chunk.lease_expires_at = None
        chunk.enqueued_at = None
        return RunStatus.QUEUED
    batch = session.scalars(select(Batch).where(Batch.id == chunk.batch_id).with_for_update()).one()
    fail_chunk(session, chunk, batch, gave_up(chunk, max_attempts, error))
    return RunStatus.FAILED


def fail_chunk(session: Session, chunk: Chunk, batch: Batch, error: str) -> None:
    """Mark the (locked) chunk failed with its error; the (locked) batch may now be settled."""
    chunk.status = RunStatus.FAILED
    chunk.error = error[:2000]
    chunk.finished_at = utcnow()
    chunk.lease_expires_at = None
    settle_batch(session, batch)


def settle_idle_batch(session: Session, batch_id: str) -> bool:
    """Settle an unfinished batch with no open chunk left; True if it is now finished."""
    batch = session.scalars(
        select(Batch).where(Batch.id == batch_id).with_for_update(skip_locked=True)
    ).first()
    if batch is None or batch.status in TERMINAL_BATCH_STATUSES:
        return False
    settle_batch(session, batch)
    return batch.status in TERMINAL_BATCH_STATUSES


def with_stats(chunk: Chunk, latest: ChunkStats) -> dict[str, Any]:
    """The chunk's stats column after a run that did `latest`."""
    earlier = ChunkStats.model_validate(chunk.stats or {})
    return earlier.then(latest).model_dump(mode="json")


def settle_batch(session: Session, batch: Batch) -> None:
    """Finish the batch once no chunk is queued or running (the batch row is locked)."""
    session.flush()
    counts = dict(
        session.execute(
            select(Chunk.status, func.count())
            .where(Chunk.batch_id == batch.id)
            .group_by(Chunk.status)
        ).all()
    )
    if any(counts.get(status, 0) for status in OPEN_RUN_STATUSES):
        return
    now = utcnow()
    if batch.status in (BatchStatus.CANCELLING, BatchStatus.CANCELLED):
        batch.status = BatchStatus.CANCELLED
        batch.cancelled_at = batch.cancelled_at or now
        return
    batch.finalizing_at = now
    failed = counts.get(RunStatus.FAILED, 0)
    if failed and not counts.get(RunStatus.SUCCEEDED, 0):
        batch.status = BatchStatus.FAILED
        batch.failed_at = now
        batch.error = first_chunk_error(session, batch.id)
    else:
        batch.status = BatchStatus.COMPLETED
        batch.completed_at = now
        if failed:
            batch.error = f"{failed} chunk(s) failed; first error: " + (
                first_chunk_error(session, batch.id) or "unknown"
            )


def first_chunk_error(session: Session, batch_id: str) -> str | None:
    return session.scalar(
        select(Chunk.error)
        .where(Chunk.batch_id == batch_id, Chunk.status == RunStatus.FAILED)
        .order_by(Chunk.index)
        .limit(1)
    )


def load_samples(session: Session, prompt_ids: list[int]) -> list[Sample]:
    return list(
        session.scalars(
            select(Sample)
            .where(Sample.prompt_id.in_(prompt_ids))
            .order_by(Sample.prompt_id, Sample.sample_index)
        )
    )


def load_verdicts(session: Session, sample_ids: list[int]) -> dict[tuple[int, str], Verdict]:
    rows = session.scalars(select(Verdict).where(Verdict.sample_id.in_(sample_ids)))
    return {(row.sample_id, row.kind): row for row in rows}


def insert_ignoring_duplicates(session: Session, model: type, rows: list[dict[str, Any]]) -> None:
    """Insert rows; those whose unique key already exists are skipped (a chunk run twice)."""
    if rows:
        session.execute(insert(model).on_conflict_do_nothing(), rows)


def insert_samples(session: Session, rows: list[dict[str, Any]]) -> None:
    insert_ignoring_duplicates(session, Sample, rows)


def insert_verdicts(session: Session, rows: list[dict[str, Any]]) -> None:
    insert_ignoring_duplicates(session, Verdict, rows)


def insert_pairs(session: Session, rows: list[dict[str, Any]]) -> None:
    insert_ignoring_duplicates(session, PreferencePair, rows)
