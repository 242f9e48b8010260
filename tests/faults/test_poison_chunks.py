"""A chunk whose stage keeps raising is retried CHUNK_MAX_ATTEMPTS times, then marked failed
with its error; the batch completes with failed counts, or fails when every chunk failed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from app.kernel.config import Settings
from app.kernel.models.statuses import RunStatus
from tests.faults.faulty_engines import FaultyPolicy, SlowJudge, serve_from_registry
from tests.faults.support import PROMPTS, chunks_of, submit
from workers.engines import registry
from workers.worker import run_worker


@pytest.fixture
def policy(monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultyPolicy]:
    """The policy this process's workers serve as canned-policy (poisoned by each test)."""
    policy = FaultyPolicy()
    monkeypatch.setitem(registry.ENGINE_FACTORIES, "hf", registry.ENGINE_FACTORIES["hf"])
    serve_from_registry(policy, SlowJudge())
    yield policy
    registry.clear_engine_cache()


def serve(settings: Settings) -> None:
    """A burst worker: a retried job goes back to its queue, so the burst runs every attempt."""
    models = {"policies": ["hf:canned-policy"], "judges": ["hf:canned-judge"]}
    run_worker(settings.model_copy(update=models), burst=True)


def test_poisoned_chunk_fails_after_max_attempts_and_batch_completes_with_failed_counts(
    client: TestClient,
    fault_settings: Settings,
    session_factory: sessionmaker[Session],
    policy: FaultyPolicy,
) -> None:
    policy.poison = "(case 05)"
    batch_id = submit(client)
    serve(fault_settings)

    chunks = chunks_of(session_factory, batch_id)
    assert [c.status for c in chunks] == ["succeeded", "failed", "succeeded"]
    poisoned = chunks[1]
    assert poisoned.attempts == 3
    assert poisoned.error == (
        "sample: RuntimeError: poisoned prompt: (case 05) (gave up after 3 of 3 attempts)"
    )
    assert policy.raised == 3  # one run per attempt, then no more
    assert policy.calls == [4, 4]  # the two healthy chunks, once each
    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"total": 12, "completed": 8, "failed": 4}
    assert batch["chunk_counts"]["failed"] == 1
    assert batch["sample_count"] == 16
    assert batch["error"] == (
        "1 chunk(s) failed; first error: sample: RuntimeError: poisoned prompt: (case 05) "
        "(gave up after 3 of 3 attempts)"
    )


def test_every_chunk_poisoned_fails_the_batch(
    client: TestClient,
    fault_settings: Settings,
    session_factory: sessionmaker[Session],
    policy: FaultyPolicy,
) -> None:
    policy.poison = "What is 2 + 2?"  # in every prompt
    batch_id = submit(client, PROMPTS[:8])
    serve(fault_settings.model_copy(update={"chunk_max_attempts": 2}))

    chunks = chunks_of(session_factory, batch_id)
    assert [(c.status, c.attempts) for c in chunks] == [(RunStatus.FAILED, 2)] * 2
    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["status"] == "failed"
    assert batch["request_counts"] == {"total": 8, "completed": 0, "failed": 8}
    assert batch["error"].endswith("(gave up after 2 of 2 attempts)")
    assert batch["failed_at"] is not None
