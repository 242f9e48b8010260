"""A real instruct model through a DPO job: SmolLM2-135M-Instruct (from its wheel), a few steps
at the paper's settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from transformers import AutoModelForCausalLM

from app.kernel.config import Settings
from tests.training.jobs import create_job, events, job, preference_lines, run_training, upload

pytestmark = pytest.mark.slow


def test_smollm2_dpo_job_at_the_paper_settings(client: TestClient, settings: Settings) -> None:
    created = create_job(
        client,
        method="dpo",
        base_model="smollm2-135m-instruct",
        data={"files": [upload(client, "preference", preference_lines())]},
        hyperparameters={"max_steps": 3, "batch_size": 2, "max_length": 256},
    )
    assert created["hyperparameters"]["learning_rate"] == 5e-7
    run_training(settings)

    done = job(client, created["id"])
    assert done["status"] == "succeeded", done["error"]
    metrics = [event["metrics"] for event in events(client, created["id"], "metrics")]
    assert len(metrics) == 3 and metrics[-1]["learning_rate"] > 0
    assert all(torch.isfinite(torch.tensor(m["loss"])) for m in metrics)
    assert all("rewards/margins" in m and "rewards/accuracies" in m for m in metrics)
    assert client.get(f"/v1/models/{done['output_model']}").status_code == 200
    trained_path = settings.training_dir.resolve() / created["id"] / "model"
    trained = AutoModelForCausalLM.from_pretrained(trained_path)
    base = AutoModelForCausalLM.from_pretrained(settings.models_dir / "smollm2-135m-instruct")
    changed = [
        name
        for (name, a), b in zip(
            trained.state_dict().items(), base.state_dict().values(), strict=True
        )
        if not torch.equal(a, b)
    ]
    assert changed  # the weights moved, if only a little at lr 5e-7
    assert Path(trained_path, "tokenizer_config.json").exists()
