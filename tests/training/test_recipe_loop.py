"""The FinDAP recipe, small, through the service: joint CPT+IT on a tiny model → sample a batch
from it → freeze a dataset → DPO on it → sample again from the DPO model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.kernel.config import Settings
from tests.training.jobs import (
    CPT_TEXTS,
    create_job,
    events,
    job,
    losses,
    mean,
    run_training,
    upload,
)
from workers.prompts.policy import build_policy_messages
from workers.worker import run_worker

QUESTIONS = [
    "Bond prices when rates rise? A) fall B) rise",
    "Free cash flow is? A) OCF minus capex B) revenue",
    "Gross margin is? A) gross profit over revenue B) debt over equity",
    "A rate hike aims to? A) curb inflation B) raise inflation",
]
RIGHT, WRONG = "Step 1: Recall the rule.\nAnswer: A", "Step 1: Guess.\nAnswer: B"


def instruction_lines() -> list[dict[str, Any]]:
    """Each question answered once right and once wrong, in the policy prompt the batches use:
    the tuned model then answers both ways, which gives FAP pairs to learn from."""
    return [
        {"messages": [*build_policy_messages(q), {"role": "assistant", "content": answer}]}
        for q in QUESTIONS
        for answer in (RIGHT, WRONG)
    ]


def sample_batch(client: TestClient, settings: Settings, model: str) -> dict[str, Any]:
    response = client.post(
        "/v1/batches",
        json={
            "prompts": [
                {"id": f"q{i}", "question": q, "reference_answer": "A"}
                for i, q in enumerate(QUESTIONS)
            ],
            "policy": {
                "engine": "hf",
                "model": model,
                "samples_per_prompt": 8,
                "temperature": 1.0,
                "max_tokens": 32,
                "seed": 7,
            },
            "judge": {"engine": "rule"},
        },
    )
    assert response.status_code == 201, response.text
    run_worker(settings.model_copy(update={"policies": [f"hf:{model}"], "judges": []}), burst=True)
    batch = client.get(f"/v1/batches/{response.json()['id']}").json()
    assert batch["status"] == "completed", batch
    return dict(batch)


def correct(batch: dict[str, Any]) -> int:
    return int(batch["verdict_counts"]["fap"]["correct"])


def policy_models(client: TestClient, batch_id: str) -> set[str]:
    samples = client.get(f"/v1/batches/{batch_id}/samples", params={"limit": 100}).json()
    return {sample["policy_model"] for sample in samples["data"]}


def test_cpt_sft_then_batch_then_dataset_then_dpo_then_a_batch_on_the_dpo_model(
    client: TestClient, settings: Settings, tiny_model_dir: Path
) -> None:
    # Stage 1: joint continual pretraining and instruction tuning.
    cpt = upload(client, "cpt", [{"text": text} for text in CPT_TEXTS * 2])
    sft = upload(client, "sft", instruction_lines())
    stage1 = create_job(
        client,
        method="cpt_sft",
        base_model=str(tiny_model_dir),
        data={"files": [cpt, sft]},
        hyperparameters={
            "max_steps": 80,
            "batch_size": 4,
            "learning_rate": 5e-3,
            "warmup_ratio": 0.0,
            "max_length": 1024,
        },
    )
    run_training(settings)
    stage1 = job(client, stage1["id"])
    assert stage1["status"] == "succeeded", stage1["error"]
    result = stage1["result"]
    # The 16 short texts hold fewer tokens than the 8 instruction examples: all of them are used.
    assert result["instruction_examples"] == 8 and result["cpt_texts"] == 16
    assert result["cpt_tokens"] < result["instruction_tokens"]
    stage1_losses = losses(client, stage1["id"])
    assert mean(stage1_losses[-5:]) < 0.7 * mean(stage1_losses[:5])

    # On-policy sampling from the stage-1 model, judged by the rule verifier.
    first = sample_batch(client, settings, stage1["output_model"])
    assert policy_models(client, first["id"]) == {stage1["output_model"]}
    assert first["pair_counts"]["fap"] > 0

    dataset = client.post(
        "/v1/datasets", json={"name": "loop", "batch_ids": [first["id"]], "kinds": ["fap"]}
    ).json()
    assert dataset["counts"]["fap"] == first["pair_counts"]["fap"]

    # Stage 2: DPO with the NLL term, from the stage-1 model, on its own pairs.
    stage2 = create_job(
        client,
        method="dpo",
        base_model=stage1["output_model"],
        data={"datasets": [dataset["id"]]},
        hyperparameters={
            "max_steps": 20,
            "batch_size": 32,
            "learning_rate": 1e-3,
            "warmup_ratio": 0.0,
            "max_length": 1024,
        },
    )
    run_training(settings)
    stage2 = job(client, stage2["id"])
    assert stage2["status"] == "succeeded", stage2["error"]
    metrics = [event["metrics"] for event in events(client, stage2["id"], "metrics")]
    assert metrics[-1]["loss"] < metrics[0]["loss"]
    assert metrics[-1]["rewards/margins"] > metrics[0]["rewards/margins"]
    assert metrics[-1]["rewards/accuracies"] > metrics[0]["rewards/accuracies"]

    # The next round samples from the DPO model, which prefers the right answers.
    second = sample_batch(client, settings, stage2["output_model"])
    assert policy_models(client, second["id"]) == {stage2["output_model"]}
    assert correct(second) > correct(first)  # measured: 9 → 21 of 32
    models = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    assert models[stage2["output_model"]]["base_model"] == stage1["output_model"]
