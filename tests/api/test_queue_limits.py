"""Redis stays bounded: a cancelled batch's jobs leave it, chunks have a minimum size, and a
project has a bounded number of chunks queued at once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from redis import Redis
from sqlalchemy import func, select

from app.kernel.config import Settings
from app.kernel.models import Batch, Chunk
from app.kernel.models.statuses import ChunkStage
from app.kernel.queue import ModelRef, job_queue, queue_name
from app.main import create_app
from tests.conftest import api_key, bearer

PROMPTS = [
    {"id": f"q{i}", "question": f"{i}+{i}? A) {2 * i} B) {i}", "reference_answer": "A"}
    for i in range(16)
]
RULE = {"judge": {"engine": "rule"}}


def client_with(settings: Settings, session_factory, limits: dict[str, int], project: str = "test"):  # type: ignore[no-untyped-def]
    """The API with these settings changed, as a key of this project."""
    app = create_app(settings.model_copy(update=limits))
    return TestClient(app, headers=bearer(api_key(session_factory, project)))


@pytest.fixture
def capped(settings: Settings, redis: Redis, session_factory) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """At least 2 prompts per chunk asked for, at most 5 chunks queued per project."""
    limits = {"min_chunk_size": 2, "chunk_size": 4, "max_queued_chunks_per_project": 5}
    with client_with(settings, session_factory, limits) as client:
        yield client


def count(session_factory, model: type) -> int:  # type: ignore[no-untyped-def]
    with session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def sample_queue(settings: Settings, redis: Redis, batch: dict[str, object]):  # type: ignore[no-untyped-def]
    policy = batch["policy"]
    assert isinstance(policy, dict)
    model = ModelRef(policy["engine"], policy["model"])
    return job_queue(queue_name(settings.queue_name, ChunkStage.SAMPLE, model), redis)


def test_a_chunk_size_below_the_minimum_is_422_naming_it(capped: TestClient) -> None:
    response = capped.post("/v1/batches", json={"prompts": PROMPTS[:4], **RULE, "chunk_size": 1})
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "chunk_size: at least 2 prompts per chunk (MIN_CHUNK_SIZE), got 1"
    )
    ok = capped.post("/v1/batches", json={"prompts": PROMPTS[:4], **RULE, "chunk_size": 2})
    assert ok.status_code == 201
    assert ok.json()["chunk_counts"]["total"] == 2


def test_a_batch_without_chunk_size_gets_chunks_of_at_least_the_minimum(
    settings: Settings,
    redis: Redis,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    # 16 prompts would spread over 8 chunks of 2; MIN_CHUNK_SIZE 8 makes it 2 chunks of 8.
    limits = {"min_chunk_size": 8, "chunk_size": 64}
    with client_with(settings, session_factory, limits) as client:
        batch = client.post("/v1/batches", json={"prompts": PROMPTS, **RULE}).json()
    assert batch["chunk_counts"]["total"] == 2


def test_settings_refuse_a_chunk_size_below_the_minimum() -> None:
    with pytest.raises(ValidationError, match=r"CHUNK_SIZE \(4\) must be at least MIN_CHUNK_SIZE"):
        Settings(chunk_size=4, min_chunk_size=8)


def test_queued_chunks_per_project_are_bounded_with_429_and_nothing_is_stored(
    capped: TestClient,
    settings: Settings,
    redis: Redis,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    first = capped.post("/v1/batches", json={"prompts": PROMPTS[:8], **RULE, "chunk_size": 2})
    assert first.status_code == 201  # 4 chunks of the 5 allowed
    queue = sample_queue(settings, redis, first.json())
    assert queue.count == 4

    refused = capped.post("/v1/batches", json={"prompts": PROMPTS[:4], **RULE, "chunk_size": 2})
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "60"
    assert refused.json()["detail"] == (
        "this project has 4 chunks queued or running and this batch adds 2; the limit is 5 "
        "(MAX_QUEUED_CHUNKS_PER_PROJECT): wait for some to finish, or cancel some"
    )
    assert count(session_factory, Batch) == 1 and count(session_factory, Chunk) == 4
    assert queue.count == 4

    # Another project has its own allowance.
    limits = {"min_chunk_size": 2, "max_queued_chunks_per_project": 5}
    with client_with(settings, session_factory, limits, project="other") as other:
        body = {"prompts": PROMPTS[:4], **RULE, "chunk_size": 2}
        assert other.post("/v1/batches", json=body).status_code == 201
    # Cancelled chunks no longer count.
    assert capped.post(f"/v1/batches/{first.json()['id']}/cancel").status_code == 200
    again = capped.post("/v1/batches", json={"prompts": PROMPTS[:4], **RULE, "chunk_size": 2})
    assert again.status_code == 201


def test_a_batch_that_alone_passes_the_chunk_limit_is_422(capped: TestClient) -> None:
    response = capped.post("/v1/batches", json={"prompts": PROMPTS[:12], **RULE, "chunk_size": 2})
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "chunk_size: this batch makes 6 chunks, more than the 5 a project may have queued "
        "(MAX_QUEUED_CHUNKS_PER_PROJECT): raise chunk_size or send fewer prompts"
    )


def test_cancel_deletes_the_batch_queued_jobs(
    client: TestClient, settings: Settings, redis: Redis
) -> None:
    batch = client.post("/v1/batches", json={"prompts": PROMPTS[:8], **RULE, "chunk_size": 1})
    queue = sample_queue(settings, redis, batch.json())
    job_ids = queue.get_job_ids()
    assert len(job_ids) == 8 and all(redis.exists(f"rq:job:{job}") for job in job_ids)

    cancelled = client.post(f"/v1/batches/{batch.json()['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert queue.count == 0
    assert not any(redis.exists(f"rq:job:{job}") for job in job_ids)
    assert not redis.sismember("rq:queues", queue.key)  # no queue of its own left behind


def db_memory_bytes(redis: Redis, but: str) -> tuple[int, int]:
    """This Redis database's keys and the bytes they use (MEMORY USAGE of each), but those
    starting with `but`: the server's own used_memory counts every database, and other
    processes' too."""
    keys = [key for key in redis.scan_iter(count=1000) if not key.startswith(but.encode())]
    return len(keys), sum(redis.memory_usage(key) or 0 for key in keys)


def test_creating_and_cancelling_batches_in_a_loop_leaves_redis_as_it_was(
    client: TestClient, settings: Settings, redis: Redis
) -> None:
    body = {"prompts": PROMPTS, **RULE, "chunk_size": 1}

    def create_and_cancel() -> None:
        batch = client.post("/v1/batches", json=body)
        assert batch.status_code == 201, batch.text
        assert client.post(f"/v1/batches/{batch.json()['id']}/cancel").status_code == 200

    # The API's request figures (a hash per figure, counted in memory and added every second)
    # are not the queue's: /metrics shows them.
    figures = f"{settings.queue_name}:metrics:"
    keys_before, bytes_before = db_memory_bytes(redis, but=figures)
    for _ in range(40):  # 640 chunk jobs created
        create_and_cancel()
    keys_after, bytes_after = db_memory_bytes(redis, but=figures)
    print(f"redis db: {keys_before} keys, {bytes_before} B -> {keys_after} keys, {bytes_after} B")
    assert keys_after == keys_before
    assert bytes_after <= bytes_before + 1024
