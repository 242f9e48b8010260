"""A training job's disk and time are bounded: old checkpoints are rotated away (the best one
kept), a job past its wall-clock limit is stopped, a failed or cancelled job's folder is removed
after a grace period, and the trainer applies the API's schedule rules to the steps it counts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from sqlalchemy import update

from app.kernel.config import Settings
from app.kernel.context import ProcessContext
from app.kernel.db.base import utcnow
from app.kernel.models import TrainingJob
from app.main import create_app
from tests.conftest import api_key, bearer
from tests.training.jobs import create_job, events, job, run_training, sft_lines, upload
from training.job_store import add_checkpoint
from training.supervisor import reconcile_training_jobs

BASE = "tiny-base"


@pytest.fixture
def trainer_settings(settings: Settings, redis: Redis, tiny_model_dir: Path) -> Settings:
    return settings.model_copy(update={"base_models": {BASE: str(tiny_model_dir)}})


@pytest.fixture
def api(trainer_settings: Settings, session_factory: Any) -> Iterator[TestClient]:
    headers = bearer(api_key(session_factory))
    with TestClient(create_app(trainer_settings), headers=headers) as client:
        yield client


def checkpoint_folders(output_dir: Path) -> set[int]:
    return {int(folder.name.split("-")[1]) for folder in output_dir.glob("checkpoint-*")}


def test_old_checkpoints_are_rotated_away_and_the_best_one_is_kept(
    api: TestClient, trainer_settings: Settings
) -> None:
    sft = upload(api, "sft", sft_lines() * 2)
    created = create_job(
        api,
        method="sft",
        base_model=BASE,
        data={"files": [sft]},
        hyperparameters={
            "max_steps": 12,
            "batch_size": 2,
            "learning_rate": 3e-3,
            "warmup_ratio": 0.0,
            "packing": False,
            "eval_fraction": 0.25,
            "checkpoint_every": 2,
        },
    )
    run_training(trainer_settings)

    done = job(api, created["id"])
    assert done["status"] == "succeeded", done["error"]
    evaluations = {e["step"]: e["metrics"]["eval_loss"] for e in events(api, done["id"], "eval")}
    assert sorted(evaluations) == [2, 4, 6, 8, 10, 12]
    best = min(evaluations, key=lambda step: evaluations[step])
    output_dir = trainer_settings.training_dir / done["id"]
    on_disk = checkpoint_folders(output_dir)
    # save_total_limit 2: two checkpoints, the newest and the best among them (of six saved).
    assert len(on_disk) == 2 and {12, best} <= on_disk
    listed = api.get(f"/v1/training-jobs/{done['id']}/checkpoints").json()["data"]
    assert {checkpoint["step"] for checkpoint in listed} == on_disk
    # The default max_length (2048) is more than the tiny model's 1024 positions.
    assert "max_length 2048 cut to the base model's 1024 positions" in [
        e["message"] for e in events(api, done["id"], "status")
    ]


def test_a_job_past_the_wall_clock_limit_is_stopped_and_failed(
    api: TestClient, trainer_settings: Settings
) -> None:
    sft = upload(api, "sft", sft_lines())
    created = create_job(
        api,
        method="sft",
        base_model=BASE,
        data={"files": [sft]},
        hyperparameters={"max_steps": 100_000, "batch_size": 2, "max_length": 64},
    )
    limited = trainer_settings.model_copy(
        update={"training_max_wall_s": 4, "training_heartbeat_timeout_s": 10}
    )
    run_training(limited)

    done = job(api, created["id"])
    assert done["status"] == "failed"
    assert done["error"].startswith(
        "ran past the wall-clock limit of 4 s per job (TRAINING_MAX_WALL_S)"
    )
    assert api.get(f"/v1/models/{done['output_model']}").status_code == 404


def test_the_trainer_refuses_checkpoints_further_apart_than_the_steps_it_counts(
    api: TestClient, trainer_settings: Settings
) -> None:
    # 8 short examples packed into one 128-token batch: one optimizer step, which only the
    # trainer can count.
    sft = upload(api, "sft", sft_lines())
    created = create_job(
        api,
        method="sft",
        base_model=BASE,
        data={"files": [sft]},
        hyperparameters={
            "batch_size": 8,
            "max_length": 128,
            "warmup_ratio": 0.0,
            "checkpoint_every": 5,
        },
    )
    run_training(trainer_settings)

    done = job(api, created["id"])
    assert done["status"] == "failed"
    assert done["error"] == (
        "hyperparameters.checkpoint_every: at most the job's 1 optimizer steps, got 5 (leave it "
        "unset to save at each epoch's end) (no checkpoint was saved)"
    )


def test_failed_and_cancelled_jobs_folders_are_removed_after_the_grace_period(
    process: ProcessContext,
    api: TestClient,
    trainer_settings: Settings,
    session_factory: Any,
) -> None:
    sft = upload(api, "sft", sft_lines())
    made = [
        create_job(
            api,
            method="sft",
            base_model=BASE,
            data={"files": [sft]},
            hyperparameters={"max_steps": 5},
        )["id"]
        for _ in range(4)
    ]
    ended = {  # status, ended this long ago
        made[0]: ("failed", timedelta(days=8)),
        made[1]: ("cancelled", timedelta(days=8)),
        made[2]: ("failed", timedelta(days=1)),  # still within the 7-day grace
        made[3]: ("succeeded", timedelta(days=30)),  # its model lives there: kept
    }
    folders = {}
    for job_id, (status, ago) in ended.items():
        folder = trainer_settings.training_dir / job_id
        (folder / "checkpoint-4").mkdir(parents=True)
        (folder / "checkpoint-4" / "model.safetensors").write_bytes(b"\0" * 1024)
        folders[job_id] = folder
        with session_factory.begin() as session:
            session.execute(
                update(TrainingJob)
                .where(TrainingJob.id == job_id)
                .values(status=status, output_dir=str(folder), finished_at=utcnow() - ago)
            )
        add_checkpoint(process, job_id, step=4, loss=1.0, path=str(folder / "checkpoint-4"))
    with ProcessContext.open(trainer_settings) as reconciling:
        reconcile_training_jobs(reconciling)
        reconcile_training_jobs(reconciling)  # nothing left to do the second time

    for job_id in made[:2]:
        assert not folders[job_id].exists()
        assert api.get(f"/v1/training-jobs/{job_id}/checkpoints").json()["data"] == []
        removed = [e["message"] for e in events(api, job_id, "status")]
        assert removed.count("output folder removed 604800 s after the job ended") == 1
    for job_id in made[2:]:
        assert (folders[job_id] / "checkpoint-4").is_dir()
        assert len(api.get(f"/v1/training-jobs/{job_id}/checkpoints").json()["data"]) == 1
