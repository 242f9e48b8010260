"""An evaluation is crash-safe like a batch: a worker SIGKILLed while judging one of its chunks
loses its lease, the reaper re-queues the chunk, another worker finishes it, every answer and
verdict is stored once, and the report counts every question once."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from app.kernel.config import Settings
from app.kernel.models import Evaluation
from tests.faults.support import PROMPTS, WorkerProcess, finished, stored_rows, wait_for
from tests.faults.test_worker_killed import judging_with_verdicts_stored


def test_worker_killed_mid_evaluation_chunk_evaluation_completes_counting_each_question_once(
    client: TestClient,
    fault_settings: Settings,
    session_factory: sessionmaker[Session],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    created = client.post(
        "/v1/evaluations",
        json={
            "model": "canned-policy",
            "prompts": PROMPTS,
            "samples": 2,
            "judge": {"model": "canned-judge"},
        },
    )
    assert created.status_code == 201, created.text
    evaluation_id = created.json()["id"]
    with session_factory() as session:
        batch_id = session.get_one(Evaluation, evaluation_id).batch_id

    first = start_worker(fault_settings, policy_delay_s=0.5, judge_delay_s=1.0)
    wait_for(
        lambda: judging_with_verdicts_stored(session_factory, batch_id, first),
        timeout_s=15,
        what="the first worker to be judging an evaluation chunk, with verdicts stored",
    )
    first.kill()
    second = start_worker(fault_settings)
    status = wait_for(
        lambda: finished(session_factory, batch_id), timeout_s=20, what="the evaluation to end"
    )
    assert status == "completed", second.log_tail()
    # 12 questions x 2 answers, a final-answer verdict each; no analysis, no pairs.
    assert stored_rows(session_factory, batch_id) == {"samples": 24, "verdicts": 24, "pairs": 0}
    report = client.get(f"/v1/evaluations/{evaluation_id}").json()
    assert report["status"] == "completed" and report["questions"] == 12
    assert report["accuracy"]["value"] == 0.5 and report["pass_at_k"]["value"] == 1.0
