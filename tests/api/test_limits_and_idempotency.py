"""Configured maxima answer 4xx with what was too much; Idempotency-Key makes retries safe."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from rq import Queue
from sqlalchemy import func, select

from app.kernel.config import Settings
from app.kernel.models import Batch, Chunk, TrainingJob
from app.kernel.models.statuses import ChunkStage
from app.kernel.queue import ModelRef, queue_name, training_queue_name
from app.main import create_app
from tests.conftest import api_key, bearer
from tests.training.jobs import sft_lines, upload

PROMPTS = [
    {"id": f"q{i}", "question": f"{i}+{i}? A) {2 * i} B) {i}", "reference_answer": "A"}
    for i in range(5)
]
RULE = {"judge": {"engine": "rule"}}


@pytest.fixture
def limited(settings: Settings, redis: Redis, session_factory) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    small = settings.model_copy(
        update={
            "max_upload_bytes": 4000,
            "max_question_chars": 50,
            "max_samples_per_prompt": 8,
            "max_tokens": 512,
            "max_open_batches_per_project": 2,
        }
    )
    with TestClient(create_app(small), headers=bearer(api_key(session_factory))) as client:
        yield client


def count(session_factory, model: type) -> int:  # type: ignore[no-untyped-def]
    with session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_request_bodies_past_the_limit_are_413_streamed_or_not(
    limited: TestClient,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    big = {"prompts": [{**PROMPTS[0], "id": f"q{i}"} for i in range(100)], **RULE}
    assert len(json.dumps(big)) > 4000
    declared = limited.post("/v1/batches", json=big)
    assert declared.status_code == 413
    assert declared.json()["detail"] == "request body: larger than the limit of 4000 bytes"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        body = json.dumps(big).encode()
        for start in range(0, len(body), 512):
            yield body[start : start + 512]

    streamed = limited.post(
        "/v1/batches", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    assert streamed.json()["detail"] == "request body: larger than the limit of 4000 bytes"
    upload = limited.post(
        "/v1/files",
        files={"file": ("big.jsonl", b'{"text": "x"}\n' * 400, "application/jsonl")},
        data={"purpose": "cpt"},
    )
    assert upload.status_code == 413
    assert upload.json()["detail"] == "request body: larger than the limit of 4000 bytes"
    assert count(session_factory, Batch) == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"prompts": [{**PROMPTS[0], "question": "x" * 51}]},
            "prompts[0].question: at most 50 characters, got 51",
        ),
        ({"policy": {"samples_per_prompt": 9}}, "policy.samples_per_prompt: at most 8, got 9"),
        ({"policy": {"max_tokens": 513}}, "policy.max_tokens: at most 512, got 513"),
        (
            {"judge": {"engine": "rule", "max_tokens": 600}},
            "judge.max_tokens: at most 512, got 600",
        ),
    ],
)
def test_configured_maxima_are_422_naming_the_field(
    limited: TestClient, change: dict[str, object], message: str
) -> None:
    response = limited.post("/v1/batches", json={"prompts": PROMPTS[:1], **RULE, **change})
    assert response.status_code == 422
    assert response.json()["detail"] == message


def test_open_batches_per_project_are_bounded_with_429(
    limited: TestClient,
    settings: Settings,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    first = limited.post("/v1/batches", json={"prompts": PROMPTS, **RULE}).json()
    limited.post("/v1/batches", json={"prompts": PROMPTS, **RULE})
    third = limited.post("/v1/batches", json={"prompts": PROMPTS, **RULE})
    assert third.status_code == 429
    assert "limit is 2" in third.json()["detail"]
    # Another project has its own allowance.
    with TestClient(
        create_app(settings.model_copy(update={"max_open_batches_per_project": 2})),
        headers=bearer(api_key(session_factory, "other")),
    ) as other:
        assert other.post("/v1/batches", json={"prompts": PROMPTS, **RULE}).status_code == 201
    limited.post(f"/v1/batches/{first['id']}/cancel")
    assert limited.post("/v1/batches", json={"prompts": PROMPTS, **RULE}).status_code == 201


def test_a_retried_batch_post_returns_the_first_batch_and_queues_nothing_new(
    client: TestClient,
    settings: Settings,
    redis: Redis,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    body = {"prompts": PROMPTS, **RULE, "chunk_size": 2}
    key = {"Idempotency-Key": "batch-2026-11-29-a"}
    first = client.post("/v1/batches", json=body, headers=key)
    again = client.post("/v1/batches", json=body, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert count(session_factory, Batch) == 1 and count(session_factory, Chunk) == 3
    policy = ModelRef(first.json()["policy"]["engine"], first.json()["policy"]["model"])
    sample_queue = Queue(
        queue_name(settings.queue_name, ChunkStage.SAMPLE, policy), connection=redis
    )
    assert sample_queue.count == 3

    other_body = client.post("/v1/batches", json={**body, "chunk_size": 3}, headers=key)
    assert other_body.status_code == 422
    assert other_body.json()["detail"].startswith("Idempotency-Key: already used")
    assert client.post("/v1/batches", json=body).json()["id"] != first.json()["id"]


def test_concurrent_retries_make_one_batch(
    client: TestClient,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    body = {"prompts": PROMPTS, **RULE}
    ids: list[str] = []

    def post() -> None:
        response = client.post("/v1/batches", json=body, headers={"Idempotency-Key": "same"})
        ids.append(response.json()["id"])

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 4 and len(set(ids)) == 1
    assert count(session_factory, Batch) == 1


def test_a_failed_first_request_leaves_the_key_free(client: TestClient) -> None:
    key = {"Idempotency-Key": "k1"}
    bad = client.post("/v1/batches", json={"prompts": [{"question": "no reference"}]}, headers=key)
    assert bad.status_code == 422
    good = client.post("/v1/batches", json={"prompts": PROMPTS, **RULE}, headers=key)
    assert good.status_code == 201 and "idempotent-replayed" not in good.headers


def test_keys_are_per_project(client: TestClient, settings: Settings, session_factory) -> None:  # type: ignore[no-untyped-def]
    key = {"Idempotency-Key": "shared-name"}
    mine = client.post("/v1/batches", json={"prompts": PROMPTS, **RULE}, headers=key).json()
    with TestClient(create_app(settings), headers=bearer(api_key(session_factory, "b"))) as other:
        theirs = other.post("/v1/batches", json={"prompts": PROMPTS, **RULE}, headers=key).json()
    assert theirs["id"] != mine["id"]


def test_a_retried_training_job_post_returns_the_first_job(
    client: TestClient,
    settings: Settings,
    redis: Redis,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    body = {
        "method": "sft",
        "base_model": "org/base",
        "data": {"files": [upload(client, "sft", sft_lines())]},
    }
    key = {"Idempotency-Key": "train-1"}
    first = client.post("/v1/training-jobs", json=body, headers=key)
    again = client.post("/v1/training-jobs", json=body, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert count(session_factory, TrainingJob) == 1
    assert Queue(training_queue_name(settings.queue_name), connection=redis).count == 1
    too_long = client.post("/v1/training-jobs", json=body, headers={"Idempotency-Key": "k" * 300})
    assert too_long.status_code == 422
    assert too_long.json()["detail"].startswith("Idempotency-Key: 1 to 255")


def test_default_policy_max_tokens_gives_way_to_a_smaller_configured_maximum(
    limited: TestClient,
) -> None:
    response = limited.post("/v1/batches", json={"prompts": PROMPTS[:1], **RULE})
    assert response.status_code == 201, response.text
    assert response.json()["policy"]["max_tokens"] == 512  # the default 1024, capped
