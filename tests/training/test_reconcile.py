"""Jobs are never left running forever, nor queued in Postgres but lost from Redis."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from redis import Redis
from rq import Queue
from sqlalchemy import update

from app.kernel.config import Settings
from app.kernel.context import ProcessContext
from app.kernel.db.base import utcnow
from app.kernel.models import TrainingJob
from app.kernel.queue import training_job_in_queue, training_queue_name
from tests.training.jobs import create_job, job, run_training, sft_lines, upload
from training.job_store import add_checkpoint, fail_running_training_jobs
from training.supervisor import reconcile_training_jobs


def queued_job(client: TestClient) -> str:
    sft = upload(client, "sft", sft_lines())
    return str(create_job(client, method="sft", base_model="org/base", data={"files": [sft]})["id"])


def test_a_running_job_without_heartbeat_is_failed_with_its_last_checkpoint(
    process: ProcessContext,
    client: TestClient,
    settings: Settings,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    stale, fresh = queued_job(client), queued_job(client)
    with session_factory.begin() as session:
        for job_id, silent_for in ((stale, 3600), (fresh, 1)):
            session.execute(
                update(TrainingJob)
                .where(TrainingJob.id == job_id)
                .values(status="running", heartbeat_at=utcnow() - timedelta(seconds=silent_for))
            )
    add_checkpoint(process, stale, step=40, loss=1.5, path="/data/ckpt-40")

    reconcile_training_jobs(process)

    failed = job(client, stale)
    assert failed["status"] == "failed"
    assert failed["error"] == (
        f"the trainer was lost: no heartbeat for {settings.training_heartbeat_timeout_s} s "
        "(last checkpoint: step 40 at …/ckpt-40)"  # the host path is cut for the tenant
    )
    assert job(client, fresh)["status"] == "running"


def test_queued_jobs_redis_lost_are_enqueued_again(
    process: ProcessContext, client: TestClient, settings: Settings, redis: Redis
) -> None:
    job_id = queued_job(client)
    redis.flushdb()
    assert not training_job_in_queue(redis, job_id)

    reconcile_training_jobs(process)
    reconcile_training_jobs(process)  # idempotent

    assert training_job_in_queue(redis, job_id)
    assert Queue(training_queue_name(settings.queue_name), connection=redis).count == 1


def test_a_job_cancelled_while_queued_never_starts(
    process: ProcessContext, client: TestClient, settings: Settings
) -> None:
    job_id = queued_job(client)
    assert client.post(f"/v1/training-jobs/{job_id}/cancel").json()["status"] == "cancelled"
    # Even if its RQ job were still delivered, the supervisor would skip it.
    from training.supervisor import run_training_job

    assert run_training_job(job_id).endswith("not queued any more, skipped")
    run_training(settings)
    assert job(client, job_id)["status"] == "cancelled"
    assert job(client, job_id)["started_at"] is None


def test_restarting_the_embedded_service_fails_jobs_it_cut_off(
    process: ProcessContext,
    client: TestClient,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    job_id = queued_job(client)
    with session_factory.begin() as session:
        session.execute(
            update(TrainingJob).where(TrainingJob.id == job_id).values(status="running")
        )
    assert fail_running_training_jobs(process) == 1
    assert job(client, job_id)["status"] == "failed"
    assert job(client, job_id)["error"].startswith("findap restarted mid-job")
