"""How long one POST of N prompts takes through the real API (HTTP, validation, COPY, enqueue).

Uses DATABASE_URL / REDIS_URL when set, else the embedded services in --data-dir.
    python benchmarks/bulk_insert.py --prompts 100000
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import typer

from app.kernel.config import get_settings
from app.launch import api_in_thread, backing_services, bearer
from app.services.api_keys import issue_key


def main(
    prompts: int = 100_000,
    port: int = 8799,
    data_dir: Path = Path("data/bench"),
) -> None:
    settings = get_settings().model_copy(update={"data_dir": data_dir})
    body = json.dumps(
        {
            "prompts": [
                {
                    "id": f"q{i}",
                    "question": f"Question {i}: a bond pays a {i % 9 + 1}% coupon on $1,000. "
                    "What is the annual coupon?\nA. $10\nB. $50\nC. $90",
                    "reference_answer": "B",
                    "metadata": {"source": "bench"},
                }
                for i in range(prompts)
            ],
            "judge": {"engine": "rule"},
        }
    ).encode()
    with (
        backing_services(settings, reclaim_running=False) as bound,
        api_in_thread(bound, "127.0.0.1", port) as url,
        httpx.Client(
            base_url=url,
            timeout=600,
            headers=bearer(issue_key(bound, project="benchmarks", name="bulk insert")),
        ) as client,
    ):
        started = time.perf_counter()
        response = client.post(
            "/v1/batches", content=body, headers={"content-type": "application/json"}
        )
        elapsed = time.perf_counter() - started
        response.raise_for_status()
        batch = response.json()
        client.post(f"/v1/batches/{batch['id']}/cancel")  # leave no work behind
    print(f"prompts:        {prompts}")
    print(f"request body:   {len(body) / 1e6:.1f} MB")
    print(f"chunks queued:  {batch['chunk_counts']['total']}")
    print(f"POST time:      {elapsed:.2f} s")
    print(f"prompts/s:      {prompts / elapsed:,.0f}")


if __name__ == "__main__":
    typer.run(main)
