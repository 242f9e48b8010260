"""/v1/models: registered, configured and trained models, on a real Postgres."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from redis import Redis

from app.kernel.config import Settings
from app.kernel.models import TrainedModel, TrainingJob
from app.main import create_app
from tests.conftest import api_key, bearer, project_id

BASE_MODELS = {"qwen-1.5b": "/models/qwen-1.5b", "org/base-7b": "org/base-7b"}


@pytest.fixture
def configured_client(
    settings: Settings,
    redis: Redis,
    session_factory,  # type: ignore[no-untyped-def]
) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update={"base_models": BASE_MODELS}))
    with TestClient(app, headers=bearer(api_key(session_factory))) as client:
        yield client


def add_trained_model(session_factory, model_id: str, created_at: datetime) -> str:  # type: ignore[no-untyped-def]
    with session_factory.begin() as session:
        job = TrainingJob(
            project_id=project_id(session_factory),
            method="dpo",
            status="succeeded",
            base_model="qwen-1.5b",
            output_model=model_id,
            data={"datasets": ["ds_1"], "files": []},
            hyperparameters={"learning_rate": 5e-7},
        )
        session.add(job)
        session.flush()
        session.add(
            TrainedModel(
                id=model_id,
                project_id=job.project_id,
                training_job_id=job.id,
                base_model="qwen-1.5b",
                method="dpo",
                path=f"/training/{job.id}/model",
                created_at=created_at,
            )
        )
        return job.id


def test_models_lists_registered_then_configured_then_trained_newest_first(
    configured_client: TestClient,
    settings: Settings,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    now = datetime.now(UTC)
    older_job = add_trained_model(
        session_factory, "qwen-1.5b-dpo-aaaaaaaa", now - timedelta(hours=1)
    )
    newer_job = add_trained_model(session_factory, "qwen-1.5b-dpo-bbbbbbbb", now)

    listed = configured_client.get("/v1/models").json()
    assert listed["object"] == "list"
    assert [(m["id"], m["source"]) for m in listed["data"]] == [
        ("smollm2-135m-instruct", "registered"),
        ("qwen-1.5b", "configured"),
        ("org/base-7b", "configured"),
        ("qwen-1.5b-dpo-bbbbbbbb", "trained"),
        ("qwen-1.5b-dpo-aaaaaaaa", "trained"),
    ]
    registered, configured, _, newer, older = listed["data"]
    assert registered["description"].startswith("SmolLM2-135M-Instruct")
    # No host folder is shown, whatever the source.
    assert registered["path"] is None and configured["path"] is None and newer["path"] is None
    assert configured["training_job_id"] is None
    assert newer["training_job_id"] == newer_job and older["training_job_id"] == older_job
    assert newer["method"] == "dpo" and newer["base_model"] == "qwen-1.5b"
    assert newer["object"] == "model" and newer["created_at"] is not None


def test_model_by_id_including_slashes_and_404_for_unknown(
    configured_client: TestClient,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    job_id = add_trained_model(session_factory, "qwen-1.5b-dpo-cccccccc", datetime.now(UTC))
    trained = configured_client.get("/v1/models/qwen-1.5b-dpo-cccccccc")
    assert trained.status_code == 200
    assert trained.json()["source"] == "trained" and trained.json()["training_job_id"] == job_id
    configured = configured_client.get("/v1/models/org/base-7b").json()
    assert (configured["id"], configured["source"], configured["path"]) == (
        "org/base-7b",
        "configured",
        None,
    )
    assert configured_client.get("/v1/models/smollm2-135m-instruct").json()["source"] == (
        "registered"
    )
    missing = configured_client.get("/v1/models/nope")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "model 'nope' not found"


def test_without_configured_models_only_registered_ones_are_listed(
    settings: Settings,
    redis: Redis,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    app = create_app(settings.model_copy(update={"base_models": {}}))
    with TestClient(app, headers=bearer(api_key(session_factory))) as client:
        assert [m["source"] for m in client.get("/v1/models").json()["data"]] == ["registered"]
