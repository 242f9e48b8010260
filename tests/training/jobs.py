"""Helpers for training-job tests: upload data, create a job, run the train worker, read back."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from app.kernel.config import Settings
from training.supervisor import run_train_worker

CPT_TEXTS = [
    "Free cash flow equals operating cash flow minus capital expenditures.",
    "A bond's price falls when market interest rates rise, and rises when they fall.",
    "Gross margin is gross profit divided by revenue.",
    "The price-to-earnings ratio is the share price divided by earnings per share.",
    "Total assets equal total liabilities plus shareholders' equity.",
    "The central bank raised the policy rate by 25 basis points to curb inflation.",
    "Dividends of $0.50 per share were declared, payable on March 15.",
    "The portfolio's Sharpe ratio improved from 0.8 to 1.1 after rebalancing.",
]

SFT_EXAMPLES = [
    ("What happens to bond prices when rates rise?", "They fall. Answer: A"),
    ("What is free cash flow?", "Operating cash flow minus capex. Answer: B"),
    ("What is gross margin?", "Gross profit over revenue. Answer: C"),
    ("What is the P/E ratio?", "Price divided by earnings per share. Answer: A"),
    ("What do total assets equal?", "Liabilities plus equity. Answer: B"),
    ("What does a rate hike aim at?", "Curbing inflation. Answer: C"),
    ("What is the Sharpe ratio?", "Excess return per unit of risk. Answer: A"),
    ("What is EBITDA?", "Earnings before interest, taxes, D&A. Answer: B"),
]


def sft_lines() -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "user", "content": question},
                {"role": "assistant", "content": answer},
            ]
        }
        for question, answer in SFT_EXAMPLES
    ]


def preference_lines() -> list[dict[str, Any]]:
    return [
        {"prompt": question, "chosen": answer, "rejected": "I do not know. Answer: D"}
        for question, answer in SFT_EXAMPLES
    ]


def upload(client: TestClient, purpose: str, lines: list[Any]) -> str:
    body = "".join(json.dumps(line) + "\n" for line in lines)
    response = client.post(
        "/v1/files",
        files={"file": (f"{purpose}.jsonl", body.encode(), "application/jsonl")},
        data={"purpose": purpose},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def create_job(client: TestClient, **request: Any) -> dict[str, Any]:
    response = client.post("/v1/training-jobs", json=request)
    assert response.status_code == 201, response.text
    return dict(response.json())


def run_training(settings: Settings) -> None:
    """Run a train worker until the training queue is empty."""
    run_train_worker(settings, burst=True)


def job(client: TestClient, job_id: str) -> dict[str, Any]:
    return dict(client.get(f"/v1/training-jobs/{job_id}").json())


def events(client: TestClient, job_id: str, kind: str | None = None) -> list[dict[str, Any]]:
    """Every event of the job, following the pagination."""
    found: list[dict[str, Any]] = []
    after: int | None = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if after is not None:
            params["after"] = after
        if kind is not None:
            params["kind"] = kind
        page = client.get(f"/v1/training-jobs/{job_id}/events", params=params).json()
        found += page["data"]
        if not page["has_more"]:
            return found
        after = page["last_id"]


def losses(client: TestClient, job_id: str) -> list[float]:
    return [event["metrics"]["loss"] for event in events(client, job_id, "metrics")]


def mean(values: list[float]) -> float:
    return sum(values) / len(values)
