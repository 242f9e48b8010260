"""`findap up`'s worker serves models it was not started with (a newly trained one, a folder a
batch names) as their queues appear, and the API sees that a worker serves them."""

from __future__ import annotations

from fastapi.testclient import TestClient
from redis import Redis
from rq import Queue

from app.kernel.config import Settings
from app.kernel.models.statuses import ChunkStage
from app.kernel.queue import ModelRef, has_live_worker, live_worker_seen_at
from tests.workers.test_pipeline import (  # noqa: F401
    CANNED_OPTIONS,
    PROMPTS,
    canned,
    submit,
)
from workers.following_worker import FollowingWorker, followed_queue_names
from workers.worker import followed_engines, run_worker


def test_a_following_worker_serves_models_queued_after_it_started(
    client: TestClient,
    settings: Settings,
    canned,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    batch_id = submit(client, PROMPTS, **CANNED_OPTIONS)
    started_with = settings.model_copy(update={"policies": ["hf:another-policy"], "judges": []})

    run_worker(started_with, burst=True)  # a plain worker leaves other models' work alone
    assert client.get(f"/v1/batches/{batch_id}").json()["status"] == "queued"

    run_worker(started_with, burst=True, follow_models=True)
    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["status"] == "completed"  # sampled by canned-policy, judged by canned-judge
    assert batch["pair_counts"] == {"fap": 6, "scp": 6, "total": 12}


def test_a_live_following_worker_counts_as_serving_every_model_of_its_engine(
    client: TestClient, settings: Settings, redis: Redis
) -> None:
    options = {"policy": {"model": "not-served-yet"}, "judge": {"engine": "rule"}}
    batch_id = submit(client, PROMPTS[:1], **options)
    assert (
        client.get(f"/v1/batches/{batch_id}")
        .json()["notes"][0]
        .startswith("no worker serves policy hf:not-served-yet")
    )
    queue = Queue(f"{settings.queue_name}:sample:hf:other", connection=redis)
    worker = FollowingWorker([queue], prefix=settings.queue_name, engines=["hf"], connection=redis)
    worker.register_birth()
    worker.heartbeat()
    try:
        notes = client.get(f"/v1/batches/{batch_id}").json()["notes"]
        assert not [note for note in notes if note.startswith("no worker serves")]
        # It registered on the new queue too, as RQ sees it.
        assert f"{settings.queue_name}:sample:hf:not-served-yet" in worker.queue_names()
        assert not has_live_worker(
            redis, settings.queue_name, ChunkStage.SAMPLE, ModelRef("vllm", "/models/x")
        )
    finally:
        worker.register_death()
    live_worker_seen_at.clear()
    model = ModelRef("hf", "not-served-yet")
    assert not has_live_worker(redis, settings.queue_name, ChunkStage.SAMPLE, model)


def test_followed_queues_are_those_of_the_stage_and_engines_under_the_prefix() -> None:
    names = ["p:sample:hf:a", "p:judge:hf:a", "p:sample:vllm:b", "p:train", "q:sample:hf:c"]
    assert followed_queue_names(names, "p", ["hf"], ChunkStage.SAMPLE) == ["p:sample:hf:a"]
    assert followed_queue_names(names, "p", ["hf", "vllm"], ChunkStage.SAMPLE) == [
        "p:sample:hf:a",
        "p:sample:vllm:b",
    ]
    assert followed_queue_names(names, "p", ["hf"], ChunkStage.JUDGE) == ["p:judge:hf:a"]


def test_only_engines_that_load_weights_in_the_worker_are_followed() -> None:
    models = [ModelRef("hf", "a"), ModelRef("openai", "gpt-4o"), ModelRef("rule", "rule")]
    assert followed_engines(models[:1], models[1:]) == ["hf"]
