"""The downloaded pairs are what TRL trains on: load them with datasets and run DPO steps."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow.parquet as pq
import torch
from fastapi.testclient import TestClient

from app.core.config import Settings
from tests.workers.test_pipeline import (  # noqa: F401
    CANNED_OPTIONS,
    PROMPTS,
    canned,
    serve_canned,
    submit,
)
from training.dpo import DPOSettings, train_dpo


def test_downloaded_pairs_load_with_datasets_and_train_two_dpo_steps(
    client: TestClient,
    settings: Settings,
    canned,  # type: ignore[no-untyped-def]  # noqa: F811
    tiny_model_dir: Path,
    tmp_path: Path,
) -> None:
    from datasets import load_dataset

    batch_id = submit(client, PROMPTS, **CANNED_OPTIONS)
    serve_canned(settings)
    pairs_file = tmp_path / "pairs.jsonl"
    with client.stream("GET", f"/v1/batches/{batch_id}/pairs") as response:
        assert response.headers["content-type"].startswith("application/jsonl")
        pairs_file.write_bytes(b"".join(response.iter_bytes()))

    dataset = load_dataset("json", data_files=str(pairs_file), split="train")
    assert len(dataset) == 12
    assert set(dataset["kind"]) == {"fap", "scp"}
    assert dataset[0]["prompt"][0]["role"] == "user"

    result = train_dpo(
        model_path=str(tiny_model_dir),
        pairs_file=pairs_file,
        output_dir=tmp_path / "dpo",
        settings=DPOSettings(
            max_steps=2, batch_size=2, learning_rate=1e-3, max_length=256, use_cpu=True
        ),
    )
    assert result.steps == 2
    assert all(torch.isfinite(torch.tensor(entry["loss"])) for entry in result.log)


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
