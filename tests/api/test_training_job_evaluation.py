"""A training job's before/after evaluation: validation, the reused before-run, the waiting
after-run released when the job succeeds and cancelled when it fails or is cancelled."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from sqlalchemy import func, select

from app.kernel.config import Settings
from app.kernel.context import ProcessContext
from app.kernel.models import Batch, Chunk, Evaluation, TrainingJob
from app.kernel.models.statuses import RunStatus
from app.kernel.queue import ChunkStage, ModelRef, job_queue, queue_name
from app.main import create_app
from tests.api.test_evaluations import QUESTIONS, RULE, serve_policy
from tests.api.test_files import upload
from tests.api.test_training_jobs import file_id
from tests.conftest import api_key, bearer
from tests.workers.test_pipeline import canned  # noqa: F401
from training import job_store
from workers.reaper import run_reaper


def eval_file(client: TestClient) -> str:
    response = upload(client, "eval", QUESTIONS)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def train_with_evaluation(client: TestClient, evaluation: dict, **more: object):  # type: ignore[no-untyped-def]
    return client.post(
        "/v1/training-jobs",
        json={
            "method": "sft",
            "base_model": "canned-policy",
            "data": {"files": [file_id(client, "sft")]},
            "evaluation": evaluation,
            **more,
        },
    )


def counts(session_factory) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with session_factory() as session:
        return {
            model.__name__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (TrainingJob, Evaluation, Batch, Chunk)
        }


def test_bad_evaluation_is_refused_naming_the_field_and_nothing_is_stored(
    client: TestClient, settings: Settings, session_factory
) -> None:
    sft, mine = file_id(client, "sft"), eval_file(client)
    with TestClient(
        create_app(settings), headers=bearer(api_key(session_factory, "other"))
    ) as other:
        theirs = eval_file(other)
    cases: list[tuple[dict, str]] = [
        ({"file_id": "file_nope"}, "evaluation.file_id: file 'file_nope' not found"),
        ({"file_id": theirs}, f"evaluation.file_id: file {theirs!r} not found"),
        ({"dataset_id": "ds_nope"}, "evaluation.dataset_id: dataset 'ds_nope' not found"),
        (
            {"file_id": sft},
            f"evaluation.file_id: file {sft} has purpose 'sft'; an evaluation reads a file of "
            "purpose 'eval'",
        ),
        ({}, "evaluation: Value error, file_id, dataset_id: give exactly one source"),
        ({"file_id": theirs, "mode": "essay"}, "evaluation.mode: Input should be 'cot' or"),
        ({"file_id": theirs, "samples": 0}, "evaluation.samples: Input should be greater"),
        ({"file_id": mine, "judge": {"model": "no-judge"}}, "evaluation.judge.model:"),
    ]
    before = counts(session_factory)
    for evaluation, message in cases:
        response = train_with_evaluation(client, {"judge": RULE, **evaluation})
        assert response.status_code == 422, (evaluation, response.text)
        assert message in response.json()["detail"], (evaluation, response.text)
    assert (
        counts(session_factory)
        == before
        == {
            "TrainingJob": 0,
            "Evaluation": 0,
            "Batch": 0,
            "Chunk": 0,
        }
    )


@pytest.mark.usefixtures("canned")
def test_before_runs_once_per_base_model_and_after_waits_for_the_model(
    client: TestClient, settings: Settings, redis: Redis, session_factory
) -> None:
    questions = eval_file(client)
    first = train_with_evaluation(client, {"file_id": questions, "judge": RULE}).json()
    before, after = first["evaluation"]["before"], first["evaluation"]["after"]
    assert before["model"] == "canned-policy" and before["status"] == "queued"
    assert after["model"] == first["output_model"] and after["status"] == "waiting"
    assert first["evaluation"]["delta"] is None

    serve_policy(settings)  # runs the before-evaluation; the waiting one is not in any queue
    shown = client.get(f"/v1/training-jobs/{first['id']}").json()["evaluation"]
    assert shown["before"]["status"] == "completed"
    assert shown["before"]["accuracy"]["value"] == pytest.approx(4 / 6)
    assert shown["before"]["by_task"]["arith"]["value"] == 1.0
    assert shown["after"]["status"] == "waiting" and shown["after"]["accuracy"] is None
    listed = client.get(f"/v1/evaluations/{after['id']}").json()
    assert listed["status"] == "waiting" and listed["request_counts"]["completed"] == 0
    assert not any("no worker serves" in note for note in listed["notes"])  # nothing to serve yet
    # The reaper leaves it alone: its chunks are never sent while it waits.
    run_reaper(settings, once=True)
    with session_factory() as session:
        batch_id = session.get_one(Evaluation, after["id"]).batch_id
        assert session.get_one(Batch, batch_id).status == "waiting"
        assert set(
            session.scalars(select(Chunk.enqueued_at).where(Chunk.batch_id == batch_id))
        ) == {None}

    # The same base model, questions and settings: the earlier before-run is reused.
    second = train_with_evaluation(client, {"file_id": questions, "judge": RULE}).json()
    assert second["evaluation"]["before"]["id"] == before["id"]
    assert second["evaluation"]["after"]["id"] != after["id"]
    # Other settings (direct mode) make a new one.
    third = train_with_evaluation(
        client, {"file_id": questions, "judge": RULE, "mode": "direct"}
    ).json()
    assert third["evaluation"]["before"]["id"] != before["id"]


@pytest.mark.usefixtures("canned")
def test_success_releases_the_after_evaluation_and_failure_or_cancel_cancels_it(
    client: TestClient,
    settings: Settings,
    redis: Redis,
    process: ProcessContext,
    session_factory,
) -> None:
    questions = eval_file(client)
    jobs = [
        train_with_evaluation(client, {"file_id": questions, "judge": RULE}).json()
        for _ in range(3)
    ]
    succeeded, failed, cancelled = jobs
    for job in (succeeded, failed):
        assert job_store.claim_job(process, job["id"], output_dir="/tmp/out")
    job_store.finish_job(process, succeeded["id"], RunStatus.SUCCEEDED, model_path="/tmp/out/m")
    job_store.finish_job(process, failed["id"], RunStatus.FAILED, error="out of memory")
    assert client.post(f"/v1/training-jobs/{cancelled['id']}/cancel").status_code == 200

    released = client.get(f"/v1/training-jobs/{succeeded['id']}").json()["evaluation"]["after"]
    assert released["status"] == "queued"
    with session_factory() as session:
        evaluation = session.get_one(Evaluation, released["id"])
        batch = session.get_one(Batch, evaluation.batch_id)
        assert batch.policy["model"] == succeeded["output_model"]
        chunk_ids = set(session.scalars(select(Chunk.id).where(Chunk.batch_id == batch.id)))
        assert all(session.scalars(select(Chunk.enqueued_at).where(Chunk.batch_id == batch.id)))
    model = ModelRef(batch.policy["engine"], succeeded["output_model"])
    queue = job_queue(queue_name(settings.queue_name, ChunkStage.SAMPLE, model), redis)
    assert {f"chunk-{chunk_id}-sample" for chunk_id in chunk_ids} == set(queue.job_ids)

    for job in (failed, cancelled):
        after = client.get(f"/v1/training-jobs/{job['id']}").json()["evaluation"]["after"]
        assert after["status"] == "cancelled", job["id"]
        detail = client.get(f"/v1/evaluations/{after['id']}").json()
        assert "there is no model to evaluate" in detail["error"]
