"""Training jobs run by a real train worker: a trainer process per job, on a tiny model."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path

from fastapi.testclient import TestClient
from redis import Redis
from transformers import AutoModelForCausalLM

from app.kernel.config import Settings
from app.main import create_app
from tests.conftest import api_key, bearer
from tests.training.jobs import (
    CPT_TEXTS,
    create_job,
    events,
    job,
    losses,
    mean,
    preference_lines,
    run_training,
    sft_lines,
    upload,
)


def job_folder(settings: Settings, job_id: str) -> Path:
    """Where the train worker keeps a job's checkpoints and produced model (`model`)."""
    return settings.training_dir.resolve() / job_id


def test_sft_job_trains_checkpoints_and_registers_its_model(
    client: TestClient, settings: Settings, tiny_model_dir: Path
) -> None:
    sft = upload(client, "sft", sft_lines())
    created = create_job(
        client,
        method="sft",
        base_model=str(tiny_model_dir),
        data={"files": [sft]},
        hyperparameters={
            "max_steps": 12,
            "batch_size": 2,
            "learning_rate": 3e-3,
            "warmup_ratio": 0.0,
            "max_length": 128,
            "checkpoint_every": 6,
        },
        suffix="finance",
    )
    assert created["status"] == "queued"

    run_training(settings)

    done = job(client, created["id"])
    assert done["status"] == "succeeded", done["error"]
    assert done["result"]["steps"] == 12
    assert done["result"]["instruction_examples"] == 8
    step_losses = losses(client, created["id"])
    assert len(step_losses) == 12
    assert mean(step_losses[-3:]) < mean(step_losses[:3])
    checkpoints = client.get(f"/v1/training-jobs/{created['id']}/checkpoints").json()["data"]
    assert [c["step"] for c in checkpoints] == [6, 12]
    folder = job_folder(settings, created["id"])
    assert [c["path"] for c in checkpoints] == ["checkpoint-6", "checkpoint-12"]  # no host path
    assert all((folder / c["path"]).is_dir() and c["loss"] > 0 for c in checkpoints)
    assert [e["message"] for e in events(client, created["id"], "status")][-2:] == [
        "training on 8 examples, 12 optimizer steps",
        "succeeded",
    ]
    assert done["result"]["weights_changed"] is True
    assert done["progress"] == {"step": 12, "total_steps": 12, "loss": step_losses[-1]}

    model = client.get(f"/v1/models/{done['output_model']}").json()
    assert re.fullmatch(r".+-finance-[0-9a-f]{16}", done["output_model"])  # 64 random bits
    assert model["source"] == "trained" and model["training_job_id"] == created["id"]
    assert model["path"] is None  # no host path
    assert AutoModelForCausalLM.from_pretrained(folder / "model").config.num_hidden_layers == 2


def test_cpt_sft_mixes_one_to_one_with_lora_and_an_eval_split(
    client: TestClient, settings: Settings, tiny_model_dir: Path
) -> None:
    cpt = upload(client, "cpt", [{"text": text * 3} for text in CPT_TEXTS * 3])  # 24 texts
    sft = upload(client, "sft", sft_lines())  # 8 examples
    created = create_job(
        client,
        method="cpt_sft",
        base_model=str(tiny_model_dir),
        data={"files": [cpt, sft]},
        hyperparameters={
            "epochs": 2,
            "batch_size": 2,
            "learning_rate": 3e-3,
            "max_length": 96,
            "eval_fraction": 0.25,
        },
        lora={"r": 8, "alpha": 16},
    )
    run_training(settings)

    done = job(client, created["id"])
    assert done["status"] == "succeeded", done["error"]
    result = done["result"]
    # 24 texts cut to as many CPT tokens as the 8 instruction examples hold (1:1 by size).
    assert result["instruction_examples"] == 8 and result["cpt_texts"] < 24
    assert result["instruction_tokens"] <= result["cpt_tokens"] < result["instruction_tokens"] + 96
    assert result["eval_examples"] > 0
    assert [e for e in events(client, created["id"], "eval") if "eval_loss" in e["metrics"]]
    model_dir = job_folder(settings, created["id"]) / "model"
    assert not (model_dir / "adapter_config.json").exists()  # merged into the weights
    AutoModelForCausalLM.from_pretrained(model_dir)


def test_dpo_job_raises_reward_margins_and_accuracy_on_its_pairs(
    client: TestClient, settings: Settings, tiny_model_dir: Path
) -> None:
    pairs = upload(client, "preference", preference_lines())
    created = create_job(
        client,
        method="dpo",
        base_model=str(tiny_model_dir),
        data={"files": [pairs]},
        # The whole set in every step, so the metrics of successive steps compare.
        hyperparameters={"max_steps": 8, "batch_size": 8, "learning_rate": 1e-3, "max_length": 96},
    )
    assert created["hyperparameters"]["nll_weight"] == 1.0
    assert created["hyperparameters"]["beta"] == 0.1
    run_training(settings)

    done = job(client, created["id"])
    assert done["status"] == "succeeded", done["error"]
    metrics = [e["metrics"] for e in events(client, created["id"], "metrics")]
    assert len(metrics) == 8
    assert metrics[-1]["rewards/margins"] > metrics[0]["rewards/margins"]
    assert metrics[-1]["rewards/accuracies"] >= 0.75
    assert metrics[-1]["loss"] < metrics[0]["loss"]


def wait_for_steps(client: TestClient, job_id: str, steps: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while len(losses(client, job_id)) < steps:
        assert time.monotonic() < deadline, "the trainer logged no steps in time"
        time.sleep(0.2)


def long_sft_job(client: TestClient, tiny_model_dir: Path) -> dict[str, object]:
    sft = upload(client, "sft", sft_lines())
    return create_job(
        client,
        method="sft",
        base_model=str(tiny_model_dir),
        data={"files": [sft]},
        hyperparameters={"max_steps": 100_000, "batch_size": 2, "checkpoint_every": 2},
    )


def test_cancel_stops_a_running_job_at_the_next_step_and_keeps_a_checkpoint(
    client: TestClient, settings: Settings, tiny_model_dir: Path
) -> None:
    created = long_sft_job(client, tiny_model_dir)
    job_id = str(created["id"])

    def cancel_when_running() -> None:
        wait_for_steps(client, job_id, 3)
        response = client.post(f"/v1/training-jobs/{job_id}/cancel")
        assert response.json()["cancel_requested"] is True

    canceller = threading.Thread(target=cancel_when_running)
    canceller.start()
    run_training(settings)
    canceller.join()

    done = job(client, job_id)
    assert done["status"] == "cancelled"
    assert done["result"]["steps"] < 100_000
    last = done["last_checkpoint"]
    assert last["step"] == done["result"]["steps"]  # saved where it stopped
    assert (job_folder(settings, job_id) / last["path"]).is_dir()
    assert client.get(f"/v1/models/{done['output_model']}").status_code == 404


def test_a_killed_trainer_fails_its_job_with_the_last_checkpoint(
    client: TestClient, settings: Settings, tiny_model_dir: Path
) -> None:
    created = long_sft_job(client, tiny_model_dir)
    job_id = str(created["id"])

    def kill_trainer() -> None:
        wait_for_steps(client, job_id, 5)
        subprocess.run(["pkill", "-KILL", "-f", f"training.run {job_id}"], check=True)

    killer = threading.Thread(target=kill_trainer)
    killer.start()
    run_training(settings)
    killer.join()

    done = job(client, job_id)
    assert done["status"] == "failed"
    assert (
        "trainer exited with code -9 (the train worker's log has its last lines)" in (done["error"])
    )
    assert f"last checkpoint: step {done['last_checkpoint']['step']}" in done["error"]
    assert done["finished_at"] is not None


def test_a_job_that_cannot_load_its_model_fails_with_the_reason(
    settings: Settings,
    redis: Redis,
    session_factory,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    # A configured base model whose folder holds no model.
    offered = settings.model_copy(
        update={"base_models": {**settings.base_models, "broken-model": str(broken)}}
    )
    with TestClient(create_app(offered), headers=bearer(api_key(session_factory))) as client:
        sft = upload(client, "sft", sft_lines())
        created = create_job(client, method="sft", base_model="broken-model", data={"files": [sft]})
        run_training(offered)
        done = job(client, created["id"])
    assert done["status"] == "failed"
    assert "no checkpoint was saved" in done["error"]
    assert "Error" in done["error"]
    assert str(tmp_path) not in done["error"]  # the host's folder stays in the operator's log


def test_the_trainer_refuses_a_packed_schedule_of_one_step_at_learning_rate_0(
    client: TestClient, settings: Settings, tiny_model_dir: Path
) -> None:
    # 8 short examples packed into 128-token sequences, 8 a batch: one optimizer step, which
    # only the trainer can count; 10 % warmup leaves it at learning rate 0.
    sft = upload(client, "sft", sft_lines())
    created = create_job(
        client,
        method="sft",
        base_model=str(tiny_model_dir),
        data={"files": [sft]},
        hyperparameters={"batch_size": 8, "max_length": 128, "learning_rate": 3e-3},
    )
    run_training(settings)

    done = job(client, created["id"])
    assert done["status"] == "failed"
    assert done["error"] == (
        "hyperparameters.warmup_ratio: with 1 optimizer step, 10% warmup leaves every step at "
        "learning rate 0; use more steps or warmup_ratio 0 (no checkpoint was saved)"
    )
    assert losses(client, created["id"]) == []
    assert client.get(f"/v1/models/{done['output_model']}").status_code == 404


def test_a_job_that_changes_no_weight_fails_and_registers_no_model(
    client: TestClient, settings: Settings, tiny_model_dir: Path
) -> None:
    # An update of 1e-30 is lost in float32 weights: the steps run, the model stays its base.
    pairs = upload(client, "preference", preference_lines())
    created = create_job(
        client,
        method="dpo",
        base_model=str(tiny_model_dir),
        data={"files": [pairs]},
        hyperparameters={"max_steps": 2, "batch_size": 4, "learning_rate": 1e-30},
    )
    run_training(settings)

    done = job(client, created["id"])
    assert done["status"] == "failed"
    assert done["result"]["weights_changed"] is False and done["result"]["steps"] == 2
    assert done["error"].startswith(
        "no weight changed in 2 optimizer steps (learning rate 1e-30): the model equals its base, "
        "so none was registered"
    )
    assert [e["message"] for e in events(client, created["id"], "status")][-1].startswith(
        "failed: no weight changed"
    )
    assert done["progress"] == {"step": 2, "total_steps": 2, "loss": losses(client, done["id"])[1]}
    assert client.get(f"/v1/models/{done['output_model']}").status_code == 404
