"""What a tenant reads back of a finished batch and a finished training job names no folder of
the host, no internal URL and no log tail: those stay in the operator's logs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from redis import Redis

from app.kernel.config import Settings
from app.main import create_app
from tests.conftest import api_key, bearer
from tests.training.jobs import create_job, job, run_training, sft_lines, upload
from tests.workers.test_pipeline import CANNED_OPTIONS, PROMPTS, canned, serve  # noqa: F401


@pytest.fixture
def named_settings(settings: Settings, tiny_model_dir: Path) -> Settings:
    """The tests' settings with the tiny model offered under a name, not under its folder (an
    operator who names a model by its folder shows that folder as the model's id)."""
    named = {name: location for name, location in settings.base_models.items() if name[0] != "/"}
    return settings.model_copy(update={"base_models": {**named, "tiny": str(tiny_model_dir)}})


@pytest.fixture
def tenant(
    named_settings: Settings,
    redis: Redis,
    session_factory,  # type: ignore[no-untyped-def]
) -> Iterator[TestClient]:
    app = create_app(named_settings)
    with TestClient(app, headers=bearer(api_key(session_factory))) as client:
        yield client


def responses(client: TestClient, paths: list[str]) -> dict[str, str]:
    """Each GET's body, after checking it answered 200."""
    bodies = {}
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200, (path, response.text)
        bodies[path] = response.text
    return bodies


def test_batch_and_training_job_responses_show_no_host_paths_urls_or_log_tails(
    tenant: TestClient,
    named_settings: Settings,
    tiny_model_dir: Path,
    canned,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    settings = named_settings
    done = tenant.post("/v1/batches", json={"prompts": PROMPTS, **CANNED_OPTIONS}).json()
    serve(settings, policy="hf:canned-policy", judge="hf:canned-judge")
    # A configured model whose folder is missing: the loader's error names that folder.
    broken = tenant.post(
        "/v1/batches",
        json={
            "prompts": PROMPTS[:2],
            "policy": {"model": "missing-model"},
            "judge": {"engine": "rule"},
        },
    ).json()
    serve(settings, policy="hf:missing-model")
    dataset = tenant.post("/v1/datasets", json={"name": "fin", "batch_ids": [done["id"]]}).json()

    sft = upload(tenant, "sft", sft_lines())
    trained = create_job(
        tenant,
        method="sft",
        base_model="tiny",
        data={"files": [sft]},
        hyperparameters={"max_steps": 4, "batch_size": 2, "max_length": 64, "checkpoint_every": 2},
    )
    run_training(settings)
    assert job(tenant, trained["id"])["status"] == "succeeded"
    output_model = job(tenant, trained["id"])["output_model"]

    bodies = responses(
        tenant,
        [
            f"/v1/batches/{done['id']}",
            f"/v1/batches/{done['id']}/samples",
            f"/v1/batches/{done['id']}/pairs",
            f"/v1/batches/{broken['id']}",
            "/v1/batches",
            f"/v1/datasets/{dataset['id']}",
            "/v1/datasets",
            f"/v1/files/{sft}",
            "/v1/files",
            f"/v1/training-jobs/{trained['id']}",
            f"/v1/training-jobs/{trained['id']}/events",
            f"/v1/training-jobs/{trained['id']}/checkpoints",
            "/v1/training-jobs",
            "/v1/models",
            f"/v1/models/{output_model}",
            "/v1/models/smollm2-135m-instruct",
            "/v1/models/tiny",
        ],
    )
    broken_batch = tenant.get(f"/v1/batches/{broken['id']}").json()
    assert broken_batch["status"] == "failed" and "model-folder" in broken_batch["error"]
    host = [
        str(settings.data_dir.resolve()),
        str(settings.training_dir.resolve()),
        str(settings.models_dir.resolve()),
        str(settings.files_dir.resolve()),
        str(tiny_model_dir),
        "/nonexistent",
        "Traceback",
        "site-packages",
    ]
    leaks = [(path, part) for path, body in bodies.items() for part in host if part in body]
    assert leaks == []
