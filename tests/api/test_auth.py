"""API keys: every /v1 route needs one; each project sees only its own data; keys stay secret."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from redis import Redis
from typer.testing import CliRunner

from app import cli as app_cli
from app.cli import cli, print_first_key
from app.kernel.config import Settings, get_settings
from app.kernel.models import TrainedModel, TrainingJob
from app.main import create_app
from app.services.api_keys import create_key
from tests.conftest import api_key, bearer, project_id
from tests.training.jobs import sft_lines, upload

ADMIN_TOKEN = "admin-secret-for-tests"
PROMPT = {"id": "q1", "question": "2+2? A) 4 B) 5", "reference_answer": "A"}
RULE_BATCH = {"prompts": [PROMPT], "judge": {"engine": "rule"}}


@pytest.fixture
def admin(settings: Settings, redis: Redis, session_factory) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    app = create_app(settings.model_copy(update={"admin_token": SecretStr(ADMIN_TOKEN)}))
    with TestClient(app, headers=bearer(ADMIN_TOKEN)) as client:
        yield client


@pytest.fixture
def other(settings: Settings, redis: Redis, session_factory) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """A client of another project."""
    with TestClient(create_app(settings), headers=bearer(api_key(session_factory, "other"))) as c:
        yield c


def v1_operations(client: TestClient) -> list[tuple[str, str]]:
    schema = client.get("/openapi.json").json()
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "x", path))
        for path, operations in schema["paths"].items()
        if path.startswith("/v1/") and not path.startswith("/v1/admin")
        for method in operations
    ]


def test_every_v1_route_answers_401_without_a_key_and_with_an_unknown_one(
    settings: Settings,
    redis: Redis,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    with TestClient(create_app(settings)) as anonymous:
        operations = v1_operations(anonymous)
        assert len(operations) >= 20
        for method, path in operations:
            response = anonymous.request(method, path)
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            assert "missing API key" in response.json()["detail"]
        wrong = anonymous.get("/v1/batches", headers=bearer("fdp_not-a-key"))
        assert wrong.status_code == 401 and wrong.json()["detail"] == "unknown API key"
        assert anonymous.get("/healthz").status_code == 200  # probes need no key


def test_a_project_sees_only_its_own_batches_files_jobs_and_models(
    client: TestClient,
    other: TestClient,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    batch = client.post("/v1/batches", json=RULE_BATCH).json()
    file_id = upload(client, "sft", sft_lines())
    job = client.post(
        "/v1/training-jobs",
        json={"method": "sft", "base_model": "org/base", "data": {"files": [file_id]}},
    ).json()

    for path in (
        f"/v1/batches/{batch['id']}",
        f"/v1/batches/{batch['id']}/samples",
        f"/v1/batches/{batch['id']}/pairs",
        f"/v1/files/{file_id}",
        f"/v1/files/{file_id}/content",
        f"/v1/training-jobs/{job['id']}",
        f"/v1/training-jobs/{job['id']}/events",
    ):
        assert other.get(path).status_code == 404, path
        assert client.get(path).status_code == 200, path
    assert other.post(f"/v1/batches/{batch['id']}/cancel").status_code == 404
    assert other.post(f"/v1/training-jobs/{job['id']}/cancel").status_code == 404
    assert other.delete(f"/v1/files/{file_id}").status_code == 404
    assert other.get("/v1/batches").json()["data"] == []
    assert other.get("/v1/files").json()["data"] == []
    assert other.get("/v1/training-jobs").json()["data"] == []

    # Naming another project's things in a request is naming nothing.
    dataset = other.post("/v1/datasets", json={"name": "x", "batch_ids": [batch["id"]]})
    assert dataset.status_code == 422
    assert dataset.json()["detail"] == f"batch_ids[0]: batch {batch['id']!r} not found"
    stolen = other.post(
        "/v1/training-jobs",
        json={"method": "sft", "base_model": "org/base", "data": {"files": [file_id]}},
    )
    assert stolen.status_code == 422
    assert stolen.json()["detail"] == f"data.files[0]: file {file_id!r} not found"

    with session_factory.begin() as session:
        session.get(TrainingJob, job["id"]).status = "succeeded"  # type: ignore[union-attr]
        session.add(
            TrainedModel(
                id=job["output_model"],
                project_id=project_id(session_factory),
                training_job_id=job["id"],
                base_model="org/base",
                method="sft",
                path="/models/x",
            )
        )
    model = job["output_model"]
    assert client.get(f"/v1/models/{model}").status_code == 200
    assert other.get(f"/v1/models/{model}").status_code == 404
    assert model not in {m["id"] for m in other.get("/v1/models").json()["data"]}
    borrowed = other.post(
        "/v1/batches", json={**RULE_BATCH, "policy": {"engine": "hf", "model": model}}
    )
    assert borrowed.status_code == 422
    assert borrowed.json()["detail"] == (
        f"policy.model: {model!r} is not a model this project may use; GET /v1/models lists them"
    )
    tuned_on_it = other.post(
        "/v1/training-jobs",
        json={
            "method": "sft",
            "base_model": model,
            "data": {"files": [upload(other, "sft", sft_lines())]},
        },
    )
    assert tuned_on_it.status_code == 422
    assert tuned_on_it.json()["detail"] == (
        f"base_model: {model!r} is not a model this project may use; GET /v1/models lists them"
    )


def test_admin_route_makes_lists_and_revokes_keys(
    admin: TestClient,
    settings: Settings,
    redis: Redis,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    made = admin.post("/v1/admin/keys", json={"project": "acme", "name": "ci"})
    assert made.status_code == 201
    key = made.json()
    assert key["key"].startswith("fdp_") and key["prefix"] == key["key"][:12]

    listed = admin.get("/v1/admin/keys").json()["data"]
    assert [k["id"] for k in listed] == [key["id"]]
    assert "key" not in listed[0] and listed[0]["project"] == "acme"

    with TestClient(create_app(settings), headers=bearer(key["key"])) as acme:
        assert acme.get("/v1/batches").status_code == 200
        revoked = admin.post(f"/v1/admin/keys/{key['id']}/revoke")
        assert revoked.json()["revoked_at"] is not None
        refused = acme.get("/v1/batches")
        assert refused.status_code == 403
        assert refused.json()["detail"] == f"API key {key['id']} was revoked"

    assert admin.get("/v1/admin/keys", headers=bearer("wrong")).status_code == 403
    assert admin.post("/v1/admin/keys/key_nope/revoke").status_code == 404
    with TestClient(create_app(settings), headers=bearer(ADMIN_TOKEN)) as no_admin:
        off = no_admin.get("/v1/admin/keys")
        assert off.status_code == 403 and "ADMIN_TOKEN" in off.json()["detail"]


def test_keys_never_reach_the_logs(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    key = client.headers["authorization"].removeprefix("Bearer ")
    with caplog.at_level(logging.DEBUG):
        client.get("/v1/batches")
        client.post("/v1/batches", json=RULE_BATCH)
        client.get("/v1/batches", headers=bearer(key + "x"))
    assert caplog.records  # something was logged
    assert key not in caplog.text


def test_keys_cli_creates_lists_and_revokes(
    settings: Settings, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.database_url or "")
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        created = runner.invoke(cli, ["keys", "create", "--project", "acme", "--name", "laptop"])
        assert created.exit_code == 0, created.output
        key_id, secret = created.output.split()[0], created.output.split()[-1]
        assert secret.startswith("fdp_")
        listed = runner.invoke(cli, ["keys", "list"], env={"COLUMNS": "200"})
        assert key_id in listed.output and "acme" in listed.output
        assert secret not in listed.output
        with TestClient(create_app(settings), headers=bearer(secret)) as acme:
            assert acme.get("/v1/batches").status_code == 200
            assert runner.invoke(cli, ["keys", "revoke", key_id]).exit_code == 0
            assert acme.get("/v1/batches").status_code == 403
        bad = runner.invoke(cli, ["keys", "create", "--project", "no spaces"])
        assert bad.exit_code == 1 and "project: String should match pattern" in bad.output
        missing = runner.invoke(cli, ["keys", "revoke", "key_nope"])
        assert missing.exit_code == 1 and "not found" in missing.output
    finally:
        get_settings.cache_clear()


def test_up_shows_a_first_key_while_the_default_project_has_none(
    settings: Settings,
    session_factory,  # type: ignore[no-untyped-def]
    capsys: pytest.CaptureFixture[str],
) -> None:
    api_key(session_factory, "demo")  # the demo's own key does not count
    print_first_key(settings, "http://127.0.0.1:8000")
    first = capsys.readouterr().out
    secret = re.search(r"fdp_\S+", first)
    assert secret is not None and "project default" in first
    with TestClient(create_app(settings), headers=bearer(secret.group())) as default:
        assert default.get("/v1/batches").status_code == 200
    print_first_key(settings, "http://127.0.0.1:8000")
    assert "fdp_" not in capsys.readouterr().out


def test_up_banner_and_keys_list_stay_whole_in_a_narrow_pipe(
    settings: Settings,
    session_factory,  # type: ignore[no-untyped-def]
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app_cli.console, "width", 30)
    url = "http://127.0.0.1:8000"
    print_first_key(settings, url)
    banner = capsys.readouterr().out.splitlines()
    secret = banner[0].rsplit(" ", 1)[-1]
    assert banner == [
        f"first API key (project default), shown only now: {secret}",
        f"  curl -H 'Authorization: Bearer {secret}' {url}/v1/batches",
        f"  findap login --url {url} --key {secret}   # then: findap submit …",
    ]

    with session_factory.begin() as session:
        keys = [
            create_key(session, project=f"project-{n}", name="a long key name").key for n in (1, 2)
        ]
    listed = subprocess.run(  # a pipe, 40 columns: as in a CI log
        [sys.executable, "-m", "app.cli", "keys", "list"],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "DATABASE_URL": settings.database_url or "", "COLUMNS": "40"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    for number, key in enumerate(keys, start=1):
        rows = [line for line in listed.splitlines() if key.id in line]
        assert len(rows) == 1, listed
        assert f"project-{number}" in rows[0] and "a long key name" in rows[0], listed
