"""The downloaded pairs are what TRL trains on: load them with datasets and run DPO steps."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import torch
from fastapi.testclient import TestClient

from app.kernel.config import Settings
from tests.training.jobs import create_job, job, run_training, upload
from tests.workers.test_pipeline import (  # noqa: F401
    CANNED_OPTIONS,
    PROMPTS,
    canned,
    serve_canned,
    submit,
)


def download_pairs(client: TestClient, batch_id: str, path: Path) -> Path:
    with client.stream("GET", f"/v1/batches/{batch_id}/pairs") as response:
        assert response.headers["content-type"].startswith("application/jsonl")
        path.write_bytes(b"".join(response.iter_bytes()))
    return path


def test_downloaded_pairs_train_straight_on_trl(
    client: TestClient,
    settings: Settings,
    canned,  # type: ignore[no-untyped-def]  # noqa: F811
    tiny_model_dir: Path,
    tmp_path: Path,
) -> None:
    """A user who takes the download to TRL themselves: it loads and trains as it is."""
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    batch_id = submit(client, PROMPTS, **CANNED_OPTIONS)
    serve_canned(settings)
    pairs_file = download_pairs(client, batch_id, tmp_path / "pairs.jsonl")

    dataset = load_dataset("json", data_files=str(pairs_file), split="train")
    assert len(dataset) == 12
    assert set(dataset["kind"]) == {"fap", "scp"}
    assert dataset[0]["prompt"][0]["role"] == "user"

    trainer = DPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        args=DPOConfig(
            output_dir=str(tmp_path / "dpo"),
            loss_type=["sigmoid", "sft"],
            loss_weights=[1.0, 1.0],
            max_steps=2,
            per_device_train_batch_size=2,
            max_length=256,
            use_cpu=True,
            save_strategy="no",
        ),
        train_dataset=dataset.select_columns(["prompt", "chosen", "rejected"]),
        processing_class=AutoTokenizer.from_pretrained(tiny_model_dir),
    )
    assert trainer.train().global_step == 2
    assert all(
        torch.isfinite(torch.tensor(e["loss"])) for e in trainer.state.log_history if "loss" in e
    )


def test_downloaded_pairs_upload_as_a_preference_file_for_a_dpo_job(
    client: TestClient,
    settings: Settings,
    canned,  # type: ignore[no-untyped-def]  # noqa: F811
    tiny_model_dir: Path,
    tmp_path: Path,
) -> None:
    """Pairs from another findap (ids and provenance ride along) train a DPO job here."""
    batch_id = submit(client, PROMPTS, **CANNED_OPTIONS)
    serve_canned(settings)
    lines = [
        json.loads(line)
        for line in download_pairs(client, batch_id, tmp_path / "p.jsonl").read_text().splitlines()
    ]
    created = create_job(
        client,
        method="dpo",
        base_model=str(tiny_model_dir),
        data={"files": [upload(client, "preference", lines)]},
        hyperparameters={"max_steps": 2, "batch_size": 4, "max_length": 256},
    )
    run_training(settings)
    done = job(client, created["id"])
    assert done["status"] == "succeeded", done["error"]
    assert done["result"]["preference_pairs"] == 12 and done["result"]["steps"] == 2


def test_pairs_download_as_parquet(
    client: TestClient,
    settings: Settings,
    canned,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    batch_id = submit(client, PROMPTS, **CANNED_OPTIONS)
    serve_canned(settings)
    response = client.get(f"/v1/batches/{batch_id}/pairs", params={"format": "parquet"})
    assert response.status_code == 200
    table = pq.read_table(io.BytesIO(response.content))
    assert table.num_rows == 12
    row = table.slice(0, 1).to_pylist()[0]
    assert row["prompt"][0]["role"] == "user" and row["kind"] in ("fap", "scp")
    assert '"policy_model": "canned-policy"' in row["provenance"]
