"""The chunk's reads and writes: short transactions, idempotent inserts, status changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.models import Batch, Chunk, PreferencePair, Prompt, Sample, Verdict
from app.models.statuses import (
    OPEN_CHUNK_STATUSES,
    BatchStatus,
    ChunkStage,
    ChunkStatus,
)


@dataclass(frozen=True)
class ChunkWork:
    """A claimed chunk: its batch's settings and its prompts."""

    chunk_id: int
    chunk_index: int
    batch_id: str
    policy: dict[str, Any]
    judge: dict[str, Any]
    pairing: dict[str, Any]
    prompts: list[Prompt]


def claim_chunk(
    session: Session, chunk_id: int, *, stage: ChunkStage, worker_name: str, lease_s: int
) -> ChunkWork | None:
    """Mark the chunk running at this stage and return its work, or None if it must not run."""
    chunk = session.scalars(select(Chunk).where(Chunk.id == chunk_id).with_for_update()).first()
    if chunk is None or chunk.status not in OPEN_CHUNK_STATUSES or chunk.stage != stage:
        return None
    batch = session.scalars(select(Batch).where(Batch.id == chunk.batch_id).with_for_update()).one()
    if stage == ChunkStage.SAMPLE and batch.status in (
        BatchStatus.CANCELLING,
        BatchStatus.CANCELLED,
    ):
        chunk.status = ChunkStatus.CANCELLED
        chunk.finished_at = utcnow()
        settle_batch(session, batch)
        return None
    now = utcnow()
    chunk.status = ChunkStatus.RUNNING
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
        chunk_id=chunk.id,
        chunk_index=chunk.index,
        batch_id=batch.id,
        policy=batch.policy,
        judge=batch.judge,
        pairing=batch.pairing,
        prompts=prompts,
    )


def hand_to_judge(session: Session, chunk_id: int, *, stats: dict[str, Any]) -> None:
    """Sampling is done: the chunk now waits in its judge's queue."""
    chunk = session.scalars(select(Chunk).where(Chunk.id == chunk_id).with_for_update()).one()
    chunk.status = ChunkStatus.QUEUED
    chunk.stage = ChunkStage.JUDGE
    chunk.lease_expires_at = None
    chunk.stats = merge_stats(chunk.stats, stats)


def finish_chunk(
    session: Session, chunk_id: int, *, stats: dict[str, Any] | None, error: str | None
) -> None:
    """Record the chunk's end and move the batch on when it was the last open chunk."""
    chunk = session.scalars(select(Chunk).where(Chunk.id == chunk_id).with_for_update()).one()
    batch = session.scalars(select(Batch).where(Batch.id == chunk.batch_id).with_for_update()).one()
    chunk.status = ChunkStatus.FAILED if error else ChunkStatus.SUCCEEDED
    chunk.error = error
    chunk.finished_at = utcnow()
    chunk.lease_expires_at = None
    if stats is not None:
        chunk.stats = merge_stats(chunk.stats, stats)
    settle_batch(session, batch)


def merge_stats(earlier: dict[str, Any] | None, latest: dict[str, Any]) -> dict[str, Any]:
    """Token usage adds up over stages and runs; the latest pair filter's drop counts win."""
    merged = dict(earlier or {})
    usage = dict(merged.get("usage", {}))
    for key, value in latest.get("usage", {}).items():
        usage[key] = usage.get(key, 0) + value
    merged["usage"] = usage
    if "pairs_dropped" in latest:
        merged["pairs_dropped"] = latest["pairs_dropped"]
    return merged


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
    if any(counts.get(status, 0) for status in OPEN_CHUNK_STATUSES):
        return
    now = utcnow()
    if batch.status in (BatchStatus.CANCELLING, BatchStatus.CANCELLED):
        batch.status = BatchStatus.CANCELLED
        batch.cancelled_at = batch.cancelled_at or now
        return
    batch.finalizing_at = now
    failed = counts.get(ChunkStatus.FAILED, 0)
    if failed and not counts.get(ChunkStatus.SUCCEEDED, 0):
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
        .where(Chunk.batch_id == batch_id, Chunk.status == ChunkStatus.FAILED)
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


def extend_lease(session: Session, chunk_id: int, *, lease_s: int) -> None:
    session.execute(
        update(Chunk)
        .where(Chunk.id == chunk_id, Chunk.status == ChunkStatus.RUNNING)
        .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s))
    )
