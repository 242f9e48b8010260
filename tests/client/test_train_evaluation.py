"""`findap train --eval`: the questions uploaded as purpose eval, the job's before/after
evaluation asked for, and the before/after table `--wait` prints."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from rich.console import Console
from typer.testing import Result

from app.client.job_evaluation import before_after_table
from tests.training.jobs import sft_lines


def test_train_eval_uploads_the_questions_and_asks_for_before_and_after(
    client: TestClient, findap: Callable[..., Result], tiny_model_dir: Path, tmp_path: Path
) -> None:
    data, questions = tmp_path / "chat.jsonl", tmp_path / "held_out.jsonl"
    data.write_text("".join(json.dumps(line) + "\n" for line in sft_lines()))
    questions.write_text(
        json.dumps({"question": "Up or down? A. up B. down", "reference_answer": "A"}) + "\n"
    )
    result = findap(
        "train",
        "--method",
        "sft",
        "--base-model",
        str(tiny_model_dir),
        "--file",
        str(data),
        "--max-steps",
        "2",
        "--eval",
        str(questions),
        "--eval-mode",
        "direct",
        "--eval-judge",
        "rule",
    )
    assert result.exit_code == 0, result.output
    assert f"uploaded {questions} as file_" in result.stdout
    assert "(1 lines, purpose eval)" in result.stdout
    job = client.get("/v1/training-jobs", params={"limit": 1}).json()["data"][0]
    before, after = job["evaluation"]["before"], job["evaluation"]["after"]
    assert (before["model"], before["status"]) == (str(tiny_model_dir), "queued")
    assert (after["model"], after["status"]) == (job["output_model"], "waiting")
    shown = client.get(f"/v1/evaluations/{after['id']}").json()
    assert shown["mode"] == "direct" and shown["judge"]["model"] == "rule"
    assert shown["source"]["kind"] == "file"

    refused = findap(
        "train", "--method", "sft", "--base-model", str(tiny_model_dir), "--file", str(data),
        "--eval", "file_nope",
    )  # fmt: skip
    assert refused.exit_code == 1
    assert "422 evaluation.file_id: file 'file_nope' not found" in refused.stderr


def score(value: float, low: float, high: float) -> dict[str, float]:
    return {"value": value, "low": low, "high": high, "n": 8}


def test_before_after_table_shows_each_task_and_the_delta() -> None:
    evaluation = {
        "before": {
            "id": "eval_b",
            "model": "base",
            "status": "completed",
            "accuracy": score(0.25, 0.1, 0.5),
            "by_task": {"sign": score(0.5, 0.2, 0.8), "direction": score(0.0, 0.0, 0.3)},
        },
        "after": {
            "id": "eval_a",
            "model": "tuned",
            "status": "completed",
            "accuracy": score(1.0, 0.8, 1.0),
            "by_task": {"sign": score(1.0, 0.7, 1.0), "direction": score(1.0, 0.7, 1.0)},
        },
        "delta": {"overall": 0.75, "by_task": {"sign": 0.5, "direction": 1.0}},
    }
    console = Console(width=120, record=True)
    console.print(before_after_table(evaluation))
    text = console.export_text()
    lines = text.splitlines()
    rows = {line.split()[1]: line for line in lines if line.startswith("│ ")}
    assert "0.250 [0.10, 0.50]" in rows["overall"] and "+0.750" in rows["overall"]
    assert "0.000 [0.00, 0.30]" in rows["direction"] and "+1.000" in rows["direction"]
    assert "+0.500" in rows["sign"]
    assert list(rows) == ["overall", "direction", "sign"]
    assert "before eval_b (completed), after eval_a (completed)" in text
