"""`findap train` against a live server and a real train worker on the tiny model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import Result

from app.kernel.config import Settings
from app.kernel.context import ProcessContext
from tests.client.conftest import start_findap
from tests.faults.support import wait_for
from tests.training.jobs import create_job, run_training, sft_lines, upload
from training import job_store


def latest_job(client: TestClient) -> dict | None:  # type: ignore[type-arg]
    jobs = client.get("/v1/training-jobs", params={"limit": 1}).json()["data"]
    return jobs[0] if jobs else None


def test_train_wait_uploads_the_file_and_shows_steps_and_loss(
    client: TestClient,
    settings: Settings,
    client_environment: dict[str, str],
    findap: Callable[..., Result],
    tiny_model_dir: Path,
    tmp_path: Path,
) -> None:
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps(line) + "\n" for line in sft_lines()))
    process = start_findap(
        "train",
        "--method",
        "sft",
        "--base-model",
        str(tiny_model_dir),
        "--file",
        str(data),
        "--max-steps",
        "4",
        "--batch-size",
        "2",
        "--lr",
        "3e-3",
        "--warmup-ratio",
        "0",
        "--max-length",
        "128",
        "--suffix",
        "cli",
        "--wait",
        "--interval",
        "0.3",
        environment=client_environment,
    )
    try:
        job = wait_for(lambda: latest_job(client), timeout_s=30, what="the job to be created")
        run_training(settings)  # a train worker in this process until the queue is empty
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()

    assert process.returncode == 0, stdout + stderr
    lines = stdout.splitlines()
    assert lines[0].startswith(f"uploaded {data} as file_") and "(8 lines, purpose sft)" in lines[0]
    assert lines[1] == f"started {job['id']}: sft on {tiny_model_dir} -> {job['output_model']}"
    steps = [line for line in lines if line.startswith("step ")]
    assert [line.split()[1] for line in steps] == ["1/4", "2/4", "3/4", "4/4"]
    assert all("  loss " in line and "  lr " in line for line in steps)
    assert any(line.startswith("status: running on ") for line in lines)
    assert "status: succeeded" in lines
    assert lines[-1].startswith(f"model {job['output_model']} is ready")

    status = findap("status", job["id"])
    assert status.exit_code == 0, status.output
    for shown in (
        "succeeded",
        job["output_model"],
        "4 steps, batch 2, lr 0.003",
        "last checkpoint",
    ):
        assert shown in status.stdout, status.stdout
    assert job["output_model"] in findap("models").stdout


def test_train_wait_on_a_job_cancelled_meanwhile_exits_3(
    client: TestClient, client_environment: dict[str, str], tiny_model_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"prompt": "Q?", "chosen": "Yes. Answer: A", "rejected": "No. Answer: B"}\n')
    process = start_findap(
        "train",
        "--method",
        "dpo",
        "--base-model",
        str(tiny_model_dir),
        "--file",
        f"preference:{data}",
        "--beta",
        "0.2",
        "--max-steps",
        "5",
        "--wait",
        "--interval",
        "0.2",
        environment=client_environment,
    )
    try:
        job = wait_for(lambda: latest_job(client), timeout_s=30, what="the job to be created")
        assert job["hyperparameters"]["beta"] == 0.2
        assert client.post(f"/v1/training-jobs/{job['id']}/cancel").status_code == 200
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()

    assert process.returncode == 3, stdout + stderr
    assert "status: cancelled before it started" in stdout
    assert stderr == f"error: training job {job['id']} cancelled\n"


def test_train_refused_by_the_server_is_a_422_line(
    findap: Callable[..., Result], tiny_model_dir: Path
) -> None:
    result = findap("train", "--method", "sft", "--base-model", str(tiny_model_dir), "--beta", "1")
    assert result.exit_code == 1
    assert result.stderr == "error: 422 hyperparameters.beta: does not apply to method sft\n"


def test_train_local_file_of_cpt_sft_needs_its_purpose(
    findap: Callable[..., Result], tmp_path: Path
) -> None:
    data = tmp_path / "mixed.jsonl"
    data.write_text('{"text": "Bonds."}\n')
    result = findap("train", "--method", "cpt_sft", "--base-model", "m", "--file", str(data))
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: --file {data}: method cpt_sft takes cpt and sft files; "
        f"write cpt:{data} or sft:{data}\n"
    )


def test_status_of_a_running_job_shows_its_step_of_all_and_the_last_loss(
    client: TestClient,
    settings: Settings,
    findap: Callable[..., Result],
    tiny_model_dir: Path,
    tmp_path: Path,
) -> None:
    created = create_job(
        client,
        method="sft",
        base_model=str(tiny_model_dir),
        data={"files": [upload(client, "sft", sft_lines())]},
    )
    job_id = created["id"]
    with ProcessContext.open(settings, name="t") as context:
        assert job_store.claim_job(context, job_id, output_dir=str(tmp_path))
        assert "progress" not in findap("status", job_id).stdout  # not counted yet
        job_store.add_events(
            context,
            job_id,
            [
                {
                    "kind": "status",
                    "step": None,
                    "message": "training on 8 examples, 20 optimizer steps",
                    "metrics": {"instruction_examples": 8, "total_steps": 20},
                },
                {"kind": "metrics", "step": 1, "metrics": {"loss": 2.5, "learning_rate": 1e-5}},
                {"kind": "metrics", "step": 2, "metrics": {"loss": 2.25, "learning_rate": 2e-5}},
            ],
        )

    shown = findap("status", job_id)
    assert shown.exit_code == 0, shown.output
    rows = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in shown.stdout.splitlines()
        if line.count("│") == 3
    }
    assert rows["status"] == "running"
    assert rows["progress"] == "step 2/20, loss 2.2500"
    listed = client.get(f"/v1/training-jobs/{job_id}").json()
    assert listed["progress"] == {"step": 2, "total_steps": 20, "loss": 2.25}


def test_train_passes_adam_betas_and_early_stopping_patience(
    client: TestClient, findap: Callable[..., Result], tiny_model_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps(line) + "\n" for line in sft_lines()))
    base = ["train", "--method", "sft", "--base-model", str(tiny_model_dir), "--file", str(data)]
    refused = findap(*base, "--early-stopping", "2")
    assert refused.exit_code == 1
    assert refused.stderr.startswith(
        "error: 422 hyperparameters.early_stopping: needs an eval split to watch"
    )
    started = findap(
        *base,
        "--adam-beta1",
        "0.8",
        "--adam-beta2",
        "0.9",
        "--eval-fraction",
        "0.25",
        "--early-stopping",
        "2",
    )
    assert started.exit_code == 0, started.output
    hyper = latest_job(client)["hyperparameters"]  # type: ignore[index]
    assert (hyper["adam_beta1"], hyper["adam_beta2"]) == (0.8, 0.9)
    assert hyper["early_stopping"] == {"patience": 2, "min_delta": 0.0}
    assert hyper["learning_rate"] == 5e-6 and hyper["weight_decay"] == 0.1
