"""Per-project bounds on what training takes: bytes of uploaded files (413), training jobs in
flight (429), and a job's steps, checkpoint spacing and sequence length (422 naming the field)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from redis import Redis

from app.kernel.config import Settings
from app.main import create_app
from tests.conftest import api_key, bearer
from tests.training.jobs import preference_lines, sft_lines

BASE = "tiny-base"
"""A configured base model (BASE_MODELS), the kind of model every project may train."""


@pytest.fixture
def bounded(
    settings: Settings, redis: Redis, session_factory: Any, tiny_model_dir: Path
) -> Iterator[Settings]:
    yield settings.model_copy(
        update={
            "base_models": {BASE: str(tiny_model_dir)},
            "max_file_bytes_per_project": 3000,
            "max_open_training_jobs_per_project": 2,
            "max_training_steps": 1000,
            "max_training_length": 4096,
        }
    )


def client_of(settings: Settings, session_factory: Any, project: str) -> TestClient:
    return TestClient(create_app(settings), headers=bearer(api_key(session_factory, project)))


def upload(client: TestClient, purpose: str, lines: list[Any]) -> Any:
    body = "".join(json.dumps(line) + "\n" for line in lines)
    return client.post(
        "/v1/files",
        files={"file": ("data.jsonl", body.encode(), "application/jsonl")},
        data={"purpose": purpose},
    )


def test_a_project_keeps_at_most_its_quota_of_file_bytes(
    bounded: Settings, session_factory: Any
) -> None:
    with (
        client_of(bounded, session_factory, "alpha") as alpha,
        client_of(bounded, session_factory, "beta") as beta,
    ):
        first = upload(alpha, "sft", sft_lines())  # ~1,100 bytes
        assert first.status_code == 201, first.text
        second = upload(alpha, "sft", sft_lines())
        assert second.status_code == 201, second.text
        room = 3000 - first.json()["bytes"] - second.json()["bytes"]

        third = upload(alpha, "sft", sft_lines())
        assert third.status_code == 413
        assert third.json() == {
            "detail": f"file: this project's files may take 3000 bytes and {room} are left; "
            "delete files it no longer needs (DELETE /v1/files/{id}) to make room"
        }
        assert len(alpha.get("/v1/files").json()["data"]) == 2  # nothing kept of the third
        assert upload(beta, "sft", sft_lines()).status_code == 201  # a quota per project

        assert alpha.delete(f"/v1/files/{first.json()['id']}").status_code == 200
        assert upload(alpha, "sft", sft_lines()).status_code == 201


def test_a_project_has_a_bounded_number_of_training_jobs_in_flight(
    bounded: Settings, session_factory: Any
) -> None:
    with (
        client_of(bounded, session_factory, "alpha") as alpha,
        client_of(bounded, session_factory, "beta") as beta,
    ):
        job = {"method": "sft", "base_model": BASE, "data": {"files": []}}
        job["data"] = {"files": [upload(alpha, "sft", sft_lines()).json()["id"]]}
        made = [alpha.post("/v1/training-jobs", json=job) for _ in range(2)]
        assert [response.status_code for response in made] == [201, 201]

        refused = alpha.post("/v1/training-jobs", json=job)
        assert refused.status_code == 429
        assert refused.json() == {
            "detail": "this project has 2 training jobs queued or running, the limit is 2: wait "
            "for one to finish, or cancel one"
        }
        beta_job = {**job, "data": {"files": [upload(beta, "sft", sft_lines()).json()["id"]]}}
        assert beta.post("/v1/training-jobs", json=beta_job).status_code == 201

        alpha.post(f"/v1/training-jobs/{made[0].json()['id']}/cancel")
        assert alpha.post("/v1/training-jobs", json=job).status_code == 201


@pytest.mark.parametrize(
    ("hyperparameters", "detail"),
    [
        (
            {"max_steps": 1001},
            "hyperparameters.max_steps: at most 1000 optimizer steps, got 1001",
        ),
        (
            # 8 pairs, 2 a step, 300 epochs: 1,200 steps.
            {"epochs": 300, "batch_size": 2},
            "hyperparameters.epochs: 300 epochs of this data make 1200 optimizer steps, the "
            "limit is 1000; lower epochs or raise batch_size",
        ),
        (
            {"max_steps": 5, "checkpoint_every": 6},
            "hyperparameters.checkpoint_every: at most the job's 5 optimizer steps, got 6 "
            "(leave it unset to save at each epoch's end)",
        ),
        (
            {"max_steps": 5, "max_length": 8192},
            "hyperparameters.max_length: at most 4096 tokens, got 8192",
        ),
    ],
)
def test_a_schedule_past_the_bounds_is_refused_naming_the_field(
    bounded: Settings, session_factory: Any, hyperparameters: dict[str, Any], detail: str
) -> None:
    with client_of(bounded, session_factory, "alpha") as alpha:
        pairs = upload(alpha, "preference", preference_lines()).json()["id"]
        response = alpha.post(
            "/v1/training-jobs",
            json={
                "method": "dpo",
                "base_model": BASE,
                "data": {"files": [pairs]},
                "hyperparameters": hyperparameters,
            },
        )
    assert response.status_code == 422
    assert response.json() == {"detail": detail}


def test_save_total_limit_defaults_to_two_and_is_bounded(
    bounded: Settings, session_factory: Any
) -> None:
    with client_of(bounded, session_factory, "alpha") as alpha:
        pairs = upload(alpha, "preference", preference_lines()).json()["id"]
        job = {"method": "dpo", "base_model": BASE, "data": {"files": [pairs]}}
        created = alpha.post("/v1/training-jobs", json={**job, "hyperparameters": {"max_steps": 5}})
        assert created.json()["hyperparameters"]["save_total_limit"] == 2, created.text
        refused = alpha.post(
            "/v1/training-jobs",
            json={**job, "hyperparameters": {"max_steps": 5, "save_total_limit": 0}},
        )
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith("hyperparameters.save_total_limit: Input should be")
