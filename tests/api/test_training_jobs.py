"""Training jobs API on real Postgres and Redis: validation, queueing, paging, cancelling."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job
from sqlalchemy import select, update

from app.kernel.config import Settings
from app.kernel.models import TrainedModel, TrainingCheckpoint, TrainingEvent, TrainingJob
from app.kernel.queue import JOB_SERIALIZER, training_queue_name, training_rq_job_id
from app.main import create_app
from tests.api.test_datasets import make_batch
from tests.api.test_files import upload
from tests.conftest import project_id
from tests.workers.test_pipeline import canned  # noqa: F401

LINES = {
    "cpt": [{"text": "Revenue rose 12%."}, {"text": "Margins narrowed."}],
    "sft": [{"prompt": "Define EBITDA.", "completion": "Earnings before interest, ..."}],
    "preference": [{"prompt": "2+2?", "chosen": "4", "rejected": "5"}],
}
HUB_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def file_id(client: TestClient, purpose: str) -> str:
    response = upload(client, purpose, LINES[purpose])  # type: ignore[arg-type]
    assert response.status_code == 201, response.text
    return response.json()["id"]


def create(client: TestClient, **body: object) -> dict:
    response = client.post("/v1/training-jobs", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def create_cpt(client: TestClient, base_model: str = HUB_MODEL) -> dict:
    return create(
        client, method="cpt", base_model=base_model, data={"files": [file_id(client, "cpt")]}
    )


def train_queue(redis: Redis, settings: Settings) -> Queue:
    return Queue(training_queue_name(settings.queue_name), connection=redis)


def set_status(session_factory, job_id: str, status: str) -> None:  # type: ignore[no-untyped-def]
    with session_factory.begin() as session:
        session.execute(update(TrainingJob).where(TrainingJob.id == job_id).values(status=status))


@pytest.fixture
def dataset_id(client: TestClient, settings: Settings, canned) -> str:  # type: ignore[no-untyped-def]  # noqa: F811
    batch_id = make_batch(client, settings)
    response = client.post("/v1/datasets", json={"name": "fin-dpo", "batch_ids": [batch_id]})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def assert_unguessable_output_model(job: dict, *, prefix: str) -> None:
    """`<prefix><16 random hex>`: 64 random bits, no part of the job's id."""
    output_model = job["output_model"]
    assert output_model.startswith(prefix)
    suffix = output_model.removeprefix(prefix)
    assert re.fullmatch(r"[0-9a-f]{16}", suffix), output_model
    job_hex = job["id"].removeprefix("ftjob_")
    assert not any(suffix[i : i + 6] in job_hex for i in range(len(suffix) - 5))


def test_each_method_queues_a_job_on_the_train_queue(
    client: TestClient, redis: Redis, settings: Settings, dataset_id: str, tiny_model_dir: Path
) -> None:
    cpt, sft, pref = file_id(client, "cpt"), file_id(client, "sft"), file_id(client, "preference")
    cases = [
        ("cpt", {"files": [cpt]}, 5e-6),
        ("sft", {"files": [sft]}, 5e-6),
        ("sft", {"datasets": [dataset_id]}, 5e-6),
        ("cpt_sft", {"files": [cpt, sft]}, 5e-6),
        ("cpt_sft", {"files": [cpt], "datasets": [dataset_id]}, 5e-6),
        ("dpo", {"datasets": [dataset_id]}, 5e-7),
        ("dpo", {"datasets": [dataset_id], "files": [pref]}, 5e-7),
    ]
    slug = tiny_model_dir.name.lower()
    created = []
    for method, data, learning_rate in cases:
        job = create(client, method=method, base_model=str(tiny_model_dir), data=data)
        assert job["status"] == "queued" and job["method"] == method
        assert job["data"] == {"datasets": [], "files": [], **data}
        assert job["hyperparameters"]["learning_rate"] == learning_rate
        assert_unguessable_output_model(job, prefix=f"{slug}-{method}-")
        assert job["cancel_requested"] is False and job["last_checkpoint"] is None
        assert job["lora"] is None and job["distributed"] is None and job["result"] is None
        created.append(job["id"])

    queue = train_queue(redis, settings)
    assert queue.count == len(cases)
    for job_id in created:
        rq_job = Job.fetch(training_rq_job_id(job_id), connection=redis, serializer=JOB_SERIALIZER)
        assert rq_job.func_name == "training.supervisor.run_training_job"
        assert list(rq_job.args) == [job_id]  # JSON: a list
        assert rq_job.origin == f"{settings.queue_name}:train"
        events = client.get(f"/v1/training-jobs/{job_id}/events").json()["data"]
        assert [(e["kind"], e["message"]) for e in events] == [("status", "queued")]


def test_every_option_is_stored_with_defaults_filled_in(client: TestClient) -> None:
    job = create(
        client,
        method="dpo",
        base_model=HUB_MODEL,
        data={"files": [file_id(client, "preference")]},
        hyperparameters={"epochs": 2, "beta": 0.2, "loss_type": "ipo", "max_steps": 50},
        lora={"r": 8, "target_modules": ["q_proj", "v_proj"]},
        distributed={"strategy": "fsdp", "num_processes": 2},
        suffix="Fin.v1",
    )
    assert_unguessable_output_model(job, prefix="smollm2-135m-instruct-Fin.v1-")
    hyper = job["hyperparameters"]
    assert hyper["epochs"] == 2 and hyper["beta"] == 0.2 and hyper["loss_type"] == "ipo"
    assert hyper["learning_rate"] == 5e-7 and hyper["batch_size"] == 8 and hyper["max_steps"] == 50
    assert job["lora"] == {
        "r": 8,
        "alpha": 32,
        "dropout": 0.05,
        "target_modules": ["q_proj", "v_proj"],
    }
    assert job["distributed"] == {"strategy": "fsdp", "num_processes": 2}
    assert client.get(f"/v1/training-jobs/{job['id']}").json() == job


def test_invalid_requests_name_the_field_and_store_nothing(
    client: TestClient, redis: Redis, settings: Settings
) -> None:
    cpt, sft, pref = file_id(client, "cpt"), file_id(client, "sft"), file_id(client, "preference")
    good = {"method": "sft", "base_model": HUB_MODEL, "data": {"files": [sft]}}
    cases = [
        (
            {**good, "data": {"datasets": ["ds_nope"]}},
            "data.datasets[0]: dataset 'ds_nope' not found",
        ),
        (
            {**good, "data": {"files": [sft, "file_nope"]}},
            "data.files[1]: file 'file_nope' not found",
        ),
        (
            {**good, "method": "dpo", "data": {"files": [pref, cpt]}},
            f"data.files[1]: file {cpt} has purpose 'cpt'; method dpo takes preference files",
        ),
        (
            {**good, "method": "cpt", "data": {"files": [sft]}},
            f"data.files[0]: file {sft} has purpose 'sft'; method cpt takes cpt files",
        ),
        (
            {**good, "method": "cpt_sft", "data": {"files": [pref]}},
            f"data.files[0]: file {pref} has purpose 'preference'; "
            "method cpt_sft takes cpt and sft files",
        ),
        (
            {**good, "method": "cpt_sft", "data": {"files": [sft]}},
            "data: method cpt_sft needs at least one cpt file",
        ),
        (
            {**good, "method": "cpt_sft", "data": {"files": [cpt]}},
            "data: method cpt_sft needs at least one sft file or dataset to tune on",
        ),
        (
            {**good, "method": "cpt", "data": {"files": [cpt], "datasets": ["ds_x"]}},
            "data.datasets: method cpt trains on cpt files only, not on datasets",
        ),
        (
            {**good, "hyperparameters": {"beta": 0.5}},
            "hyperparameters.beta: does not apply to method sft",
        ),
        (
            {**good, "method": "dpo", "data": {"files": [pref]}, "hyperparameters": {"packing": 1}},
            "hyperparameters.packing: does not apply to method dpo",
        ),
        (
            {**good, "hyperparameters": {"learning_rate": -1e-5}},
            "hyperparameters.learning_rate: Input should be greater than 0",
        ),
        ({**good, "data": {}}, "data: name at least one dataset or file"),
        (
            {**good, "base_model": "./nope"},
            "base_model: './nope' is not a model this project may use; GET /v1/models lists them",
        ),
        ({**good, "method": "ppo"}, "method: Input should be 'cpt', 'sft', 'cpt_sft' or 'dpo'"),
        ({**good, "suffix": "a b"}, "suffix: String should match pattern"),
        ({**good, "colour": "red"}, "colour: Extra inputs are not permitted"),
        ({**good, "lora": {"rank": 8}}, "lora.rank: Extra inputs are not permitted"),
        (
            {**good, "hyperparameters": {"learnig_rate": 1e-5}},
            "hyperparameters.learnig_rate: Extra inputs are not permitted "
            "(did you mean 'learning_rate'?)",
        ),
        (
            {**good, "data": {"dataset": ["ds_x"]}},
            "data.dataset: Extra inputs are not permitted (did you mean 'datasets'?)",
        ),
    ]
    for body, message in cases:
        response = client.post("/v1/training-jobs", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["detail"].startswith(message), response.json()["detail"]
    assert client.get("/v1/training-jobs").json()["data"] == []
    assert train_queue(redis, settings).count == 0


def test_a_produced_model_is_usable_only_once_its_job_succeeded(
    client: TestClient,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    first = create_cpt(client)
    produced = first["output_model"]
    too_early = client.post(
        "/v1/training-jobs",
        json={"method": "cpt", "base_model": produced, "data": {"files": first["data"]["files"]}},
    )
    assert too_early.status_code == 422
    assert too_early.json()["detail"] == (
        f"base_model: model '{produced}' is not ready: training job {first['id']} is queued"
    )

    set_status(session_factory, first["id"], "succeeded")
    with session_factory.begin() as session:
        session.add(
            TrainedModel(
                id=produced,
                project_id=project_id(session_factory),
                training_job_id=first["id"],
                base_model=first["base_model"],
                method="cpt",
                path="/models/produced",
            )
        )
    second = create(
        client, method="sft", base_model=produced, data={"files": [file_id(client, "sft")]}
    )
    assert second["output_model"].startswith(f"{produced}-sft-")

    # A batch samples from a produced model by its id (the worker resolves it).
    batch = client.post(
        "/v1/batches",
        json={
            "prompts": [{"question": "2+2?", "reference_answer": "4"}],
            "policy": {"model": produced},
            "judge": {"engine": "rule"},
        },
    )
    assert batch.status_code == 201, batch.text
    assert batch.json()["policy"]["model"] == produced


def test_list_pages_newest_first(client: TestClient) -> None:
    ids = [create_cpt(client)["id"] for _ in range(3)]
    first = client.get("/v1/training-jobs", params={"limit": 2}).json()
    assert [job["id"] for job in first["data"]] == ids[:0:-1]
    assert first["has_more"] is True and first["last_id"] == ids[1]
    rest = client.get("/v1/training-jobs", params={"limit": 2, "after": first["last_id"]}).json()
    assert [job["id"] for job in rest["data"]] == [ids[0]]
    assert rest["has_more"] is False and rest["last_id"] == ids[0]
    assert client.get("/v1/training-jobs", params={"after": "ftjob_nope"}).status_code == 404
    assert client.get("/v1/training-jobs", params={"limit": 101}).status_code == 422


def test_cancel_queued_job_takes_it_off_the_queue(
    client: TestClient, redis: Redis, settings: Settings
) -> None:
    job = create_cpt(client)
    kept = create_cpt(client)
    response = client.post(f"/v1/training-jobs/{job['id']}/cancel")
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"] is not None
    assert train_queue(redis, settings).job_ids == [training_rq_job_id(kept["id"])]
    with pytest.raises(NoSuchJobError):
        Job.fetch(training_rq_job_id(job["id"]), connection=redis)
    events = client.get(f"/v1/training-jobs/{job['id']}/events").json()["data"]
    assert [e["message"] for e in events] == ["queued", "cancelled before it started"]

    again = client.post(f"/v1/training-jobs/{job['id']}/cancel")
    assert again.status_code == 200 and again.json() == cancelled


def test_cancel_running_job_asks_the_trainer_to_stop(
    client: TestClient,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    job = create_cpt(client)
    set_status(session_factory, job["id"], "running")
    response = client.post(f"/v1/training-jobs/{job['id']}/cancel")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "running" and response.json()["cancel_requested"] is True
    assert response.json()["finished_at"] is None
    with session_factory() as session:
        requested_at = session.get(TrainingJob, job["id"]).cancel_requested_at
    assert requested_at is not None
    client.post(f"/v1/training-jobs/{job['id']}/cancel")
    with session_factory() as session:
        assert session.get(TrainingJob, job["id"]).cancel_requested_at == requested_at


def test_cancel_finished_job_is_a_conflict(
    client: TestClient,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    for status in ("succeeded", "failed"):
        job = create_cpt(client)
        set_status(session_factory, job["id"], status)
        response = client.post(f"/v1/training-jobs/{job['id']}/cancel")
        assert response.status_code == 409
        assert response.json()["detail"] == (
            f"training job '{job['id']}' is {status}: it can no longer be cancelled"
        )
    assert client.post("/v1/training-jobs/ftjob_nope/cancel").status_code == 404


def test_events_page_with_after_and_filter_by_kind(
    client: TestClient,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    job = create_cpt(client)
    with session_factory.begin() as session:
        for step in range(1, 6):
            session.add(
                TrainingEvent(
                    job_id=job["id"], kind="metrics", step=step, metrics={"loss": 1 / step}
                )
            )
        session.add(
            TrainingEvent(job_id=job["id"], kind="eval", step=5, metrics={"eval_loss": 0.4})
        )
    url = f"/v1/training-jobs/{job['id']}/events"

    first = client.get(url, params={"limit": 3}).json()
    assert [(e["kind"], e["step"]) for e in first["data"]] == [
        ("status", None),
        ("metrics", 1),
        ("metrics", 2),
    ]
    assert first["has_more"] is True and first["last_id"] == first["data"][-1]["id"]
    rest = client.get(url, params={"limit": 3, "after": first["last_id"]}).json()
    assert [(e["kind"], e["step"]) for e in rest["data"]] == [
        ("metrics", 3),
        ("metrics", 4),
        ("metrics", 5),
    ]
    assert rest["has_more"] is True
    last = client.get(url, params={"after": rest["last_id"]}).json()
    assert [e["kind"] for e in last["data"]] == ["eval"] and last["has_more"] is False
    caught_up = client.get(url, params={"after": last["last_id"]}).json()
    assert caught_up == {
        "object": "list",
        "has_more": False,
        "data": [],
        "first_id": None,
        "last_id": None,
    }

    metrics = client.get(url, params={"kind": "metrics"}).json()["data"]
    assert [e["step"] for e in metrics] == [1, 2, 3, 4, 5]
    assert metrics[1]["metrics"] == {"loss": 0.5} and metrics[1]["object"] == "training_job.event"
    assert client.get(url, params={"kind": "other"}).status_code == 422
    assert client.get("/v1/training-jobs/ftjob_nope/events").status_code == 404


def test_checkpoints_listed_by_step_and_the_last_one_shown_on_the_job(
    client: TestClient,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    job, other = create_cpt(client), create_cpt(client)
    with session_factory.begin() as session:
        for step, loss in ((20, 0.5), (5, 1.5), (10, 0.9)):
            session.add(
                TrainingCheckpoint(
                    job_id=job["id"],
                    step=step,
                    loss=loss,
                    path=f"/srv/training/{job['id']}/checkpoint-{step}",
                )
            )
        session.add(TrainingCheckpoint(job_id=other["id"], step=99, loss=None, path="/ckpt/o"))

    listed = client.get(f"/v1/training-jobs/{job['id']}/checkpoints").json()
    # Each checkpoint by its folder's name within the job: no host path.
    assert [(c["step"], c["loss"], c["path"]) for c in listed["data"]] == [
        (5, 1.5, "checkpoint-5"),
        (10, 0.9, "checkpoint-10"),
        (20, 0.5, "checkpoint-20"),
    ]
    shown = client.get(f"/v1/training-jobs/{job['id']}").json()["last_checkpoint"]
    assert (shown["step"], shown["path"]) == (20, "checkpoint-20")
    by_id = {j["id"]: j for j in client.get("/v1/training-jobs").json()["data"]}
    assert by_id[job["id"]]["last_checkpoint"]["step"] == 20
    assert by_id[other["id"]]["last_checkpoint"]["step"] == 99
    assert client.get("/v1/training-jobs/ftjob_nope/checkpoints").status_code == 404
    assert client.get("/v1/training-jobs/ftjob_nope").status_code == 404


def test_redis_outage_is_503_and_the_job_stays_queued_for_reconcile(
    client: TestClient,
    settings: Settings,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    cpt = file_id(client, "cpt")
    down = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(down), headers=client.headers) as offline:
        response = offline.post(
            "/v1/training-jobs",
            json={"method": "cpt", "base_model": HUB_MODEL, "data": {"files": [cpt]}},
        )
    assert response.status_code == 503
    assert response.json()["detail"] == "queue unavailable, retry shortly"
    with session_factory() as session:
        assert session.scalars(select(TrainingJob.status)).all() == ["queued"]


def test_a_schedule_that_leaves_every_step_at_learning_rate_0_is_refused(
    client: TestClient, redis: Redis, settings: Settings, dataset_id: str
) -> None:
    pref = file_id(client, "preference")  # 1 pair
    refused = (
        "hyperparameters.warmup_ratio: with 1 optimizer step, 10% warmup leaves every step at "
        "learning rate 0; use more steps or warmup_ratio 0"
    )
    one_step = [
        {"data": {"files": [pref]}},  # 1 pair in a batch of 8: 1 step
        {"data": {"files": [pref]}, "hyperparameters": {"max_steps": 1, "epochs": 5}},
        # 12 pairs, 8 a batch, 2 batches accumulated into one update
        {"data": {"datasets": [dataset_id]}, "hyperparameters": {"gradient_accumulation": 2}},
    ]
    for body in one_step:
        response = client.post(
            "/v1/training-jobs", json={"method": "dpo", "base_model": HUB_MODEL, **body}
        )
        assert response.status_code == 422, (body, response.text)
        assert response.json()["detail"] == refused
    assert client.get("/v1/training-jobs").json()["data"] == []
    assert train_queue(redis, settings).count == 0

    trains = [
        {"data": {"files": [pref]}, "hyperparameters": {"warmup_ratio": 0}},
        {"data": {"files": [pref]}, "hyperparameters": {"lr_scheduler": "constant"}},
        {"data": {"files": [pref]}, "hyperparameters": {"epochs": 2}},
        {"data": {"datasets": [dataset_id]}},  # 12 pairs, 8 a batch: 2 steps
    ]
    for body in trains:
        create(client, method="dpo", base_model=HUB_MODEL, **body)
    # Packed sequences are counted by the trainer (tests/training), not here.
    create(client, method="sft", base_model=HUB_MODEL, data={"files": [file_id(client, "sft")]})
