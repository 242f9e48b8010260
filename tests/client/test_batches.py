"""`findap submit`, `status`, `cancel` and `download` of batches against a live server."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
from sqlalchemy import select, update
from typer.testing import Result

from app.kernel.config import Settings
from app.kernel.models import Batch, Prompt
from tests.client.conftest import CANNED_FLAGS, start_findap
from tests.faults.support import PROMPTS, WorkerProcess


def write_prompts(path: Path, prompts: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(prompt) + "\n" for prompt in prompts))
    return path


def test_submit_wait_shows_progress_and_ends_with_the_counts(
    settings: Settings, client_environment: dict[str, str], tmp_path: Path
) -> None:
    prompts = write_prompts(tmp_path / "prompts.jsonl", PROMPTS)  # 12 prompts: 3 chunks of 4
    worker = WorkerProcess(settings, tmp_path / "worker.log", policy_delay_s=0.3)
    try:
        process = start_findap(
            "submit",
            str(prompts),
            *CANNED_FLAGS,
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
    assert lines[0].startswith("submitted batch_")
    assert "12 prompts in 3 chunks, 2 samples each from canned-policy (hf)" in lines[0]
    progress = [line for line in lines if ": chunks " in line]
    assert len(progress) >= 3, stdout  # a line each time a count moves
    assert progress[-1].startswith("completed: chunks 3/3, 100% done, samples 24, pairs 24, ")
    assert "tokens/s, ETA " in progress[-1]
    assert any(line.startswith("in_progress: chunks 1/3") for line in progress), stdout
    assert "24 (fap 12, scp 12)" in stdout  # the summary table after the progress


def test_submit_wait_shows_progress_inside_a_single_chunk(
    settings: Settings, client_environment: dict[str, str], tmp_path: Path
) -> None:
    prompts = write_prompts(tmp_path / "prompts.jsonl", PROMPTS[:4])  # one chunk of four
    # The policy takes 6 s in ten decoding steps, reported as the hf engine reports them.
    worker = WorkerProcess(settings, tmp_path / "worker.log", policy_delay_s=6)
    try:
        process = start_findap(
            "submit",
            str(prompts),
            *CANNED_FLAGS,
            "--wait",
            "--interval",
            "0.2",
            environment=client_environment,
        )
        stdout, stderr = process.communicate(timeout=120)
    finally:
        worker.stop()

    assert process.returncode == 0, stderr + worker.log_tail()
    inside = [line for line in stdout.splitlines() if line.startswith("in_progress: chunks 0/1")]
    done = {re.search(r"(\d+)% done", line).group(1) for line in inside}  # type: ignore[union-attr]
    assert len(done - {"0"}) >= 2, stdout  # the figure moved twice before the chunk ended
    assert any("ETA ?" not in line for line in inside), stdout  # and so did the ETA
    assert "completed: chunks 1/1, 100% done, samples 8, pairs 8, " in stdout


def test_submit_prints_the_id_and_a_retry_with_the_same_key_returns_that_batch(
    findap: Callable[..., Result], tmp_path: Path
) -> None:
    prompts = write_prompts(tmp_path / "prompts.jsonl", PROMPTS[:3])
    first = findap("submit", str(prompts), *CANNED_FLAGS, "--idempotency-key", "round-1", "-q")
    assert first.exit_code == 0, first.output
    batch_id = first.stdout.strip()
    assert batch_id.startswith("batch_")

    again = findap("submit", str(prompts), *CANNED_FLAGS, "--idempotency-key", "round-1")
    assert again.exit_code == 0, again.output
    assert again.stdout.startswith(f"already made with this Idempotency-Key: {batch_id}: 3 prompts")


def test_submit_a_file_with_a_bad_line_is_one_error_line_and_exit_1(
    findap: Callable[..., Result], tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"question": "Q?", "reference_answer": "A"}\n{"reference_answer": "B"}\n')
    result = findap("submit", str(prompts), *CANNED_FLAGS)
    assert result.exit_code == 1
    assert result.stderr == "error: 422 file line 2: question: Field required\n"
    assert result.stdout == ""


def test_submit_options_the_server_refuses_name_the_field(
    findap: Callable[..., Result], tmp_path: Path
) -> None:
    prompts = write_prompts(tmp_path / "prompts.jsonl", PROMPTS[:1])
    result = findap("submit", str(prompts), "--judge", "rule", "--samples", "64")
    assert result.exit_code == 1
    assert result.stderr == "error: 422 policy.samples_per_prompt: at most 32, got 64\n"


def test_status_of_a_batch_shows_its_counts_and_json(
    findap: Callable[..., Result], completed_batch: str
) -> None:
    table = findap("status", completed_batch)
    assert table.exit_code == 0, table.output
    assert f"batch {completed_batch}" in table.stdout
    for shown in ("completed", "6/6 done, 0 failed", "12 (fap 6, scp 6)", "canned-judge (hf)"):
        assert shown in table.stdout, table.stdout

    raw = findap("status", completed_batch, "--json")
    assert raw.exit_code == 0
    batch = json.loads(raw.stdout)
    assert batch["id"] == completed_batch and batch["pair_counts"]["total"] == 12


def test_download_writes_one_line_per_pair(
    findap: Callable[..., Result], completed_batch: str, tmp_path: Path
) -> None:
    target = tmp_path / "pairs.jsonl"
    result = findap("download", completed_batch, "-o", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote 12 lines to {target}\n"
    pairs = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(pairs) == 12 and {pair["batch_id"] for pair in pairs} == {completed_batch}
    assert not target.with_name("pairs.jsonl.part").exists()

    fap_only = findap(
        "download", completed_batch, "-o", str(tmp_path / "fap.jsonl"), "--kind", "fap"
    )
    assert fap_only.stdout == f"wrote 6 lines to {tmp_path / 'fap.jsonl'}\n"
    kinds = {json.loads(line)["kind"] for line in (tmp_path / "fap.jsonl").read_text().splitlines()}
    assert kinds == {"fap"}

    parquet = tmp_path / "pairs.parquet"
    as_parquet = findap("download", completed_batch, "-o", str(parquet), "--format", "parquet")
    assert as_parquet.stdout == f"wrote 12 pairs to {parquet}\n"
    assert pq.read_table(parquet).num_rows == 12


def test_download_of_an_unknown_batch_is_a_404_line_and_writes_nothing(
    findap: Callable[..., Result], tmp_path: Path
) -> None:
    target = tmp_path / "pairs.jsonl"
    result = findap("download", "batch_nope", "-o", str(target))
    assert result.exit_code == 1
    assert result.stderr == "error: 404 batch 'batch_nope' not found\n"
    assert list(tmp_path.iterdir()) == []


def test_cancel_a_queued_batch(findap: Callable[..., Result], tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "prompts.jsonl", PROMPTS[:2])
    batch_id = findap("submit", str(prompts), *CANNED_FLAGS, "-q").stdout.strip()
    cancelled = findap("cancel", batch_id)
    assert cancelled.exit_code == 0, cancelled.output
    assert cancelled.stdout == f"{batch_id} cancelled\n"
    again = findap("cancel", batch_id)
    assert again.exit_code == 1
    assert again.stderr.startswith("error: 409 ")


def test_download_into_a_missing_folder_is_one_error_line(
    findap: Callable[..., Result], completed_batch: str, tmp_path: Path
) -> None:
    target = tmp_path / "missing" / "pairs.jsonl"
    result = findap("download", completed_batch, "-o", str(target))
    assert result.exit_code == 1
    assert result.stderr == f"error: --output {target}: No such file or directory\n"


def test_download_of_a_running_batch_says_so_and_needs_partial(
    findap: Callable[..., Result],
    completed_batch: str,
    session_factory,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    with session_factory.begin() as session:  # its 12 pairs so far, more to come
        session.execute(
            update(Batch).where(Batch.id == completed_batch).values(status="in_progress")
        )
    target = tmp_path / "pairs.jsonl"
    refused = findap("download", completed_batch, "-o", str(target))
    assert refused.exit_code == 1
    assert refused.stderr == (
        f"error: batch {completed_batch} is in_progress: its pairs are not all made yet; wait "
        f"until it completes (`findap status {completed_batch}`), or add --partial for the "
        "pairs so far\n"
    )
    assert list(tmp_path.iterdir()) == []

    partial = findap("download", completed_batch, "-o", str(target), "--partial")
    assert partial.exit_code == 0, partial.output
    assert partial.stderr == (
        f"warning: batch {completed_batch} is in_progress: these are the pairs made so far\n"
    )
    assert partial.stdout == f"wrote 12 lines to {target}\n"

    queued_id = findap(
        "submit", str(write_prompts(tmp_path / "p.jsonl", PROMPTS[:1])), *CANNED_FLAGS, "-q"
    ).stdout.strip()
    nothing_yet = findap("download", queued_id, "-o", str(tmp_path / "none.jsonl"))
    assert nothing_yet.exit_code == 1
    assert nothing_yet.stderr.startswith(f"error: batch {queued_id} is queued: ")


def test_submit_a_csv_file_with_a_column_mapping(
    findap: Callable[..., Result], tmp_path: Path, session_factory
) -> None:  # type: ignore[no-untyped-def]
    table = tmp_path / "exam.csv"
    table.write_text(
        'uid,problem,solution\nx1,"What is 2 + 2?\nA. 4",A\nx2,Capital of Peru?,Lima\n'
    )
    columns = '{"question": "problem", "reference_answer": "solution", "id": "uid"}'
    result = findap("submit", str(table), *CANNED_FLAGS, "--columns", columns, "-q")
    assert result.exit_code == 0, result.output
    with session_factory() as session:
        stored = session.execute(
            select(Prompt.custom_id, Prompt.question, Prompt.reference_answer).order_by(
                Prompt.index
            )
        ).all()
    assert [tuple(row) for row in stored] == [
        ("x1", "What is 2 + 2?\nA. 4", "A"),
        ("x2", "Capital of Peru?", "Lima"),
    ]

    unmapped = findap("submit", str(table), *CANNED_FLAGS, "--columns", '{"question": "q"}')
    assert unmapped.exit_code == 1
    assert unmapped.stderr == (
        "error: 422 columns.question: no column 'q' in the file; "
        "its columns: uid, problem, solution\n"
    )


def test_download_samples_and_pairs_of_one_kind_as_parquet(
    findap: Callable[..., Result], completed_batch: str, tmp_path: Path
) -> None:
    answers = tmp_path / "answers.parquet"
    result = findap(
        "download", completed_batch, "--samples", "-o", str(answers), "--format", "parquet"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote 12 samples to {answers}\n"
    rows = pq.read_table(answers).to_pylist()
    assert sorted(row["fap"]["verdict"] for row in rows) == ["correct"] * 6 + ["wrong"] * 6

    scp = tmp_path / "scp.parquet"
    only_scp = findap(
        "download", completed_batch, "-o", str(scp), "--format", "parquet", "--kind", "scp"
    )
    assert only_scp.stdout == f"wrote 6 pairs to {scp}\n"
    assert set(pq.read_table(scp).column("kind").to_pylist()) == {"scp"}
