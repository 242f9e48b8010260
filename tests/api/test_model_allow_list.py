"""Models are an allow-list: registered, configured, and the project's own trained models. A
tenant never names a folder of the host, a hub id, or another project's model, and every such
name gets the one answer a model that does not exist gets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from sqlalchemy import func, select, text

from app.kernel.config import Settings
from app.kernel.models import Batch, Sample, TrainedModel, TrainingJob
from app.main import create_app
from tests.conftest import api_key, bearer, project_id
from tests.engines.test_openai_engine import FakeServer
from tests.training.jobs import sft_lines, upload
from tests.workers.test_pipeline import PROMPTS, canned, serve  # noqa: F401
from workers.engines import registry

RULE_JUDGE = {"engine": "rule"}


def refusal(field: str, name: str) -> str:
    return f"{field}: {name!r} is not a model this project may use; GET /v1/models lists them"


@pytest.fixture
def other(settings: Settings, redis: Redis, session_factory) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """A client of a second project."""
    with TestClient(create_app(settings), headers=bearer(api_key(session_factory, "other"))) as c:
        yield c


def trained_model_of(session_factory, project: str, *, path: str) -> str:  # type: ignore[no-untyped-def]
    """A succeeded job of `project` and the model it registered, under an id made the way the
    service makes them; returns the model id."""
    owner = project_id(session_factory, project)
    with session_factory.begin() as session:
        job = TrainingJob(
            project_id=owner,
            method="sft",
            status="succeeded",
            base_model="canned-policy",
            output_model="canned-policy-sft-0123456789abcdef",
            data={"datasets": [], "files": []},
            hyperparameters={"learning_rate": 1e-5},
        )
        session.add(job)
        session.flush()
        session.add(
            TrainedModel(
                id=job.output_model,
                project_id=owner,
                training_job_id=job.id,
                base_model=job.base_model,
                method="sft",
                path=path,
            )
        )
        return job.output_model


def ask_for(client: TestClient, name: str) -> dict[str, tuple[int, str]]:
    """Every place a model is named, each answered by (status code, detail)."""
    file_id = upload(client, "sft", sft_lines())
    requests = {
        "policy": ("/v1/batches", {"prompts": PROMPTS[:1], "policy": {"model": name}}),
        "judge": ("/v1/batches", {"prompts": PROMPTS[:1], "judge": {"model": name}}),
        "base_model": (
            "/v1/training-jobs",
            {"method": "sft", "base_model": name, "data": {"files": [file_id]}},
        ),
    }
    answers = {}
    for field, (route, body) in requests.items():
        response = client.post(route, json=body)
        answers[field] = (response.status_code, response.json()["detail"])
    shown = client.get(f"/v1/models/{name}")
    answers["GET /v1/models/{id}"] = (shown.status_code, shown.json()["detail"])
    return answers


def test_another_projects_trained_model_is_answered_like_a_model_that_does_not_exist(
    client: TestClient,
    other: TestClient,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    theirs = trained_model_of(session_factory, "test", path="/srv/findap/training/ftjob_x/model")
    assert client.get(f"/v1/models/{theirs}").status_code == 200  # the owner sees it

    made_up = "canned-policy-sft-fedcba9876543210"
    for_theirs, for_made_up = ask_for(other, theirs), ask_for(other, made_up)
    assert for_theirs == {
        field: (status, detail.replace(made_up, theirs))
        for field, (status, detail) in for_made_up.items()
    }
    assert for_theirs == {
        "policy": (422, refusal("policy.model", theirs)),
        "judge": (422, refusal("judge.model", theirs)),
        "base_model": (422, refusal("base_model", theirs)),
        "GET /v1/models/{id}": (404, f"model {theirs!r} not found"),
    }
    assert theirs not in {model["id"] for model in other.get("/v1/models").json()["data"]}
    assert other.get("/v1/batches").json()["data"] == []
    assert other.get("/v1/training-jobs").json()["data"] == []


@pytest.mark.parametrize(
    "name",
    [
        "/etc",
        "..",
        "~",
        "../../../../etc",
        "/nonexistent/folder",
        "DATA_DIR",  # the service's own data folder, which exists
        "MODELS_DIR/smollm2-135m-instruct",
        "Qwen/Qwen2.5-7B-Instruct",
        "gpt2",
    ],
)
def test_a_folder_or_hub_id_gets_the_one_answer_and_leaves_nothing_behind(
    client: TestClient,
    settings: Settings,
    redis: Redis,
    session_factory,  # type: ignore[no-untyped-def]
    name: str,
) -> None:
    name = name.replace("DATA_DIR", str(settings.data_dir.resolve()))
    name = name.replace("MODELS_DIR", str(settings.models_dir.resolve()))
    answers = ask_for(client, name)
    shown = answers.pop("GET /v1/models/{id}")
    # A URL's dot segments are resolved before routing: `..` never reaches the route.
    assert shown == (404, "Not Found" if ".." in name else f"model {name!r} not found")
    assert answers == {
        "policy": (422, refusal("policy.model", name)),
        "judge": (422, refusal("judge.model", name)),
        "base_model": (422, refusal("base_model", name)),
    }
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Batch)) == 0
        assert session.scalar(select(func.count()).select_from(TrainingJob)) == 0
    # No queue (nor metrics label) is made for a name the service does not know.
    assert not [key for key in redis.scan_iter(f"*{name}*")]


def test_the_rule_judge_takes_no_other_model_name(
    client: TestClient,
    redis: Redis,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    refused = client.post(
        "/v1/batches",
        json={"prompts": PROMPTS[:1], "judge": {"engine": "rule", "model": "/etc/passwd"}},
    )
    assert refused.status_code == 422
    assert refused.json()["detail"] == (
        "judge.model: the rule judge loads no model: leave it out or name it 'rule', "
        "got '/etc/passwd'"
    )
    assert not list(redis.scan_iter("*passwd*"))  # no queue of that name
    for judge in ({"engine": "rule"}, {"model": "rule"}, {"engine": "rule", "model": "rule"}):
        batch = client.post("/v1/batches", json={"prompts": PROMPTS[:1], "judge": judge})
        assert batch.status_code == 201, batch.text


def test_registered_configured_and_own_trained_models_are_accepted(
    client: TestClient,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    own = trained_model_of(session_factory, "test", path="/srv/findap/training/ftjob_y/model")
    file_id = upload(client, "sft", sft_lines())
    for name in ("smollm2-135m-instruct", "canned-policy", own):
        batch = client.post("/v1/batches", json={"prompts": PROMPTS[:1], "policy": {"model": name}})
        assert batch.status_code == 201, batch.text
        job = client.post(
            "/v1/training-jobs",
            json={"method": "sft", "base_model": name, "data": {"files": [file_id]}},
        )
        assert job.status_code == 201, job.text
    listed = {(m["id"], m["source"]) for m in client.get("/v1/models").json()["data"]}
    assert {
        ("smollm2-135m-instruct", "registered"),
        ("canned-policy", "configured"),
        (own, "trained"),
    } <= listed


def test_a_batch_names_no_model_server_url(client: TestClient) -> None:
    """The openai engine's server is the operator's (ENGINE_OPTIONS.openai.base_url, set per
    worker): a batch cannot point it anywhere."""
    for field in ("policy", "judge"):
        response = client.post(
            "/v1/batches",
            json={
                "prompts": PROMPTS[:1],
                field: {
                    "engine": "openai",
                    "model": "gpt-judge",
                    "base_url": "http://169.254.169.254/latest",
                },
            },
        )
        assert response.status_code == 422
        assert f"{field}.base_url: Extra inputs are not permitted" in response.json()["detail"]


def test_the_worker_checks_the_model_again_against_the_batchs_project(
    client: TestClient,
    settings: Settings,
    session_factory,  # type: ignore[no-untyped-def]
    canned,  # type: ignore[no-untyped-def]  # noqa: F811
    tiny_model_dir: Path,
) -> None:
    """A batch of project `other` whose row names project `test`'s model (written before the
    API checked, or by hand) fails at the worker: it never loads the other project's weights."""
    theirs = trained_model_of(session_factory, "test", path=str(tiny_model_dir))
    with TestClient(
        create_app(settings), headers=bearer(api_key(session_factory, "other"))
    ) as other:
        created = other.post(
            "/v1/batches",
            json={
                "prompts": PROMPTS[:2],
                "policy": {"model": "canned-policy"},
                "judge": RULE_JUDGE,
            },
        )
        assert created.status_code == 201, created.text
        batch_id = created.json()["id"]
        with session_factory.begin() as session:
            forged = "jsonb_set(policy, '{model}', to_jsonb(CAST(:model AS text)))"
            session.execute(text(f"UPDATE batches SET policy = {forged}"), {"model": theirs})
        serve(settings, policy="hf:canned-policy")
        batch = other.get(f"/v1/batches/{batch_id}").json()
    assert batch["status"] == "failed"
    assert refusal("model", theirs) in batch["error"]
    assert (str(tiny_model_dir)) not in [model for _, model in registry.loaded_models()]
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Sample)) == 0


def test_the_worker_checks_a_remote_judge_model_too(
    settings: Settings,
    session_factory,  # type: ignore[no-untyped-def]
    canned,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    """A forged judge that names another project's model on the openai engine is refused by the
    worker before any request reaches the model server."""
    theirs = trained_model_of(session_factory, "test", path="/srv/findap/training/ftjob_z/model")
    server = FakeServer()
    server.start()
    try:
        with TestClient(
            create_app(settings), headers=bearer(api_key(session_factory, "other"))
        ) as other:
            created = other.post(
                "/v1/batches",
                json={
                    "prompts": PROMPTS[:2],
                    "policy": {"model": "canned-policy", "samples_per_prompt": 2},
                    "judge": {"engine": "openai", "model": "gpt-judge"},
                },
            )
            assert created.status_code == 201, created.text
            with session_factory.begin() as session:
                forged = "jsonb_set(judge, '{model}', to_jsonb(CAST(:model AS text)))"
                session.execute(text(f"UPDATE batches SET judge = {forged}"), {"model": theirs})
            options = {"openai": {"base_url": server.base_url, "retry_backoff_s": 0.01}}
            # Even a worker that serves that name on its judge queue refuses the work.
            serve(
                settings.model_copy(update={"engine_options": options}),
                policy="hf:canned-policy",
                judge=f"openai:{theirs}",
            )
            batch = other.get(f"/v1/batches/{created.json()['id']}").json()
    finally:
        server.stop()
        registry.clear_engine_cache()
    assert batch["status"] == "failed"
    assert refusal("model", theirs) in batch["error"]
    assert server.state.bodies == []
