"""Workers take only the work they serve; sampling and judging can run on different workers."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from rq import Queue, SimpleWorker

from app.kernel import queue as queue_service
from app.kernel.config import Settings
from app.kernel.context import ProcessContext
from tests.workers.test_pipeline import (  # noqa: F401
    CANNED_OPTIONS,
    PROMPTS,
    canned,
    serve,
    submit,
)
from workers.reaper import reap


def batch(client: TestClient, batch_id: str) -> dict:
    return client.get(f"/v1/batches/{batch_id}").json()


def test_sampling_and_judging_run_on_different_workers(
    client: TestClient,
    settings: Settings,
    canned,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    batch_id = submit(client, PROMPTS, **CANNED_OPTIONS)

    serve(settings, policy="hf:another-policy", judge="hf:canned-judge")
    assert batch(client, batch_id)["status"] == "queued"  # nothing it serves was sampled yet
    assert batch(client, batch_id)["sample_count"] == 0

    serve(settings, policy="hf:canned-policy")  # a policy-only worker
    sampled = batch(client, batch_id)
    assert sampled["status"] == "in_progress"
    assert sampled["sample_count"] == 12
    assert sum(sampled["verdict_counts"]["fap"].values()) == 0
    assert sampled["chunk_counts"]["queued"] == 2  # both now wait in the judge's queue

    serve(settings, policy="hf:another-policy", judge="hf:canned-judge")  # a judge worker
    done = batch(client, batch_id)
    assert done["status"] == "completed"
    assert done["pair_counts"] == {"fap": 6, "scp": 6, "total": 12}
    assert done["usage"]["policy_completion_tokens"] == 144  # sampling usage kept across stages


WHERE_TO_START = (
    " (in the folder of `findap up` it joins it; elsewhere set DATABASE_URL and REDIS_URL)"
)


def test_a_batch_whose_model_no_worker_serves_says_so(
    client: TestClient, settings: Settings, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queue_service, "LIVE_WORKER_TRUSTED_S", 0.5)
    batch_id = submit(client, PROMPTS[:1], **CANNED_OPTIONS)
    assert batch(client, batch_id)["notes"] == [
        "no worker serves policy hf:canned-policy: start `findap worker --policy hf:canned-policy`"
        + WHERE_TO_START,
        "no worker serves judge hf:canned-judge: start `findap worker --judge hf:canned-judge`"
        + WHERE_TO_START,
    ]
    queue = Queue(f"{settings.queue_name}:sample:hf:canned-policy", connection=redis)
    worker = SimpleWorker([queue], connection=redis)
    worker.register_birth()
    try:
        assert batch(client, batch_id)["notes"] == [
            "no worker serves judge hf:canned-judge: start `findap worker --judge hf:canned-judge`"
            + WHERE_TO_START
        ]
    finally:
        worker.register_death()
    # A worker seen is trusted for LIVE_WORKER_TRUSTED_S (polls need not ask Redis each time) ...
    assert len(batch(client, batch_id)["notes"]) == 1
    time.sleep(0.6)
    # ... then asked after again: its death shows.
    assert len(batch(client, batch_id)["notes"]) == 2


def test_chunks_lost_from_redis_are_requeued_to_their_stage(
    process: ProcessContext,
    client: TestClient,
    settings: Settings,
    redis: Redis,
    canned,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    batch_id = submit(client, PROMPTS, **CANNED_OPTIONS)
    serve(settings, policy="hf:canned-policy")  # sampled; both chunks wait for the judge
    redis.flushdb()  # Redis restarted without persistence

    context = process
    assert reap(context).enqueued == 2
    assert reap(context).enqueued == 0
    judge_queue = Queue(f"{settings.queue_name}:judge:hf:canned-judge", connection=redis)
    assert judge_queue.count == 2

    serve(settings, policy="hf:canned-policy", judge="hf:canned-judge")
    assert batch(client, batch_id)["status"] == "completed"
