"""Progress inside a running chunk: the worker writes what its stage has done (throttled, to
Redis), and the batch summary shows it as `progress` until the chunk's counts are stored."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from sqlalchemy import select

from app.kernel.config import Settings
from app.kernel.context import ProcessContext
from app.kernel.models import Chunk
from app.kernel.models.statuses import ChunkStage
from app.kernel.progress import progress_key
from tests.workers.test_pipeline import (  # noqa: F401
    CANNED_OPTIONS,
    PROMPTS,
    canned,
    serve_canned,
    submit,
)
from workers import chunk_store
from workers.progress import FAP, SAMPLE, ChunkProgress, chunk_progress


def claim_first_chunk(process: ProcessContext, batch_id: str) -> chunk_store.ChunkWork:
    """The batch's first chunk, claimed as a worker claims it (status running)."""
    with process.session_factory.begin() as session:
        chunk_id = session.scalars(
            select(Chunk.id).where(Chunk.batch_id == batch_id).order_by(Chunk.index)
        ).first()
        assert chunk_id is not None
        work = chunk_store.claim_chunk(
            session,
            chunk_id,
            stage=ChunkStage.SAMPLE,
            worker_name="test",
            lease_s=60,
            max_attempts=3,
        )
    assert work is not None
    return work


def test_the_summary_shows_what_a_running_chunk_did_until_it_is_stored(
    client: TestClient,
    process: ProcessContext,
    settings: Settings,
    canned,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    batch_id = submit(client, PROMPTS[:4], **CANNED_OPTIONS)  # one chunk of four prompts
    assert client.get(f"/v1/batches/{batch_id}").json()["progress"] is None
    work = claim_first_chunk(process, batch_id)
    progress = chunk_progress(process.redis, settings.queue_name, work)
    progress.interval_s = 0  # every report written (a worker writes every 2 s at most)

    with progress.call(SAMPLE):
        progress.decoded(tokens=40, finished=3, fraction=0.5)
    shown = client.get(f"/v1/batches/{batch_id}").json()["progress"]
    assert shown["running_chunks"] == 1
    assert shown["samples_generated"] == 3 and shown["samples_judged"] == 0
    assert shown["tokens_generated"] == 40
    # Sampling is the first of its three model calls (sample, judge, analyse), half done.
    assert shown["chunks_fraction"] == pytest.approx(0.5 / 3, abs=1e-3)
    assert shown["prompts_fraction"] == pytest.approx(4 * 0.5 / 3, abs=0.01)
    assert shown["tokens_per_s"] > 0 and shown["elapsed_s"] >= 0

    progress.call_done(tokens=96, answers=8)  # the exact figures of the call replace the steps
    progress.stored()  # the 8 answers are stored: sample_count shows them now
    with progress.call(FAP):
        progress.decoded(tokens=5, finished=2, fraction=0.25)
    shown = client.get(f"/v1/batches/{batch_id}").json()["progress"]
    assert shown["samples_generated"] == 0 and shown["samples_judged"] == 2
    assert shown["tokens_generated"] == 101
    assert shown["chunks_fraction"] == pytest.approx(1.25 / 3, abs=1e-3)

    progress.clear()
    assert client.get(f"/v1/batches/{batch_id}").json()["progress"] is None


def test_reports_are_written_at_most_every_interval_but_a_call_s_start_and_end_always(
    redis: Redis,
) -> None:
    progress = ChunkProgress(
        redis, "p", batch_id="batch_x", chunk_id=7, prompts=4, phases=(SAMPLE,), interval_s=3600
    )

    def written() -> dict[bytes, bytes]:
        return redis.hgetall(progress_key("p", "batch_x"))  # type: ignore[return-value]

    with progress.call(SAMPLE):
        first = written()[b"7"]
        progress.decoded(tokens=10, finished=0, fraction=0.5)
        assert written()[b"7"] == first  # within the interval: not written
    progress.call_done(tokens=12, answers=2)
    assert b'"tokens": 12' in written()[b"7"]
    progress.clear()
    assert written() == {}


def test_a_worker_clears_its_chunk_s_progress_when_the_stage_ends(
    client: TestClient,
    settings: Settings,
    redis: Redis,
    canned,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    batch_id = submit(client, PROMPTS, **CANNED_OPTIONS)
    serve_canned(settings)
    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["status"] == "completed" and batch["progress"] is None
    assert redis.hgetall(progress_key(settings.queue_name, batch_id)) == {}
