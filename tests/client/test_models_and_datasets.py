"""`findap models` and `findap datasets` against a live server."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from typer.testing import Result

from tests.client.conftest import CANNED_FLAGS
from tests.faults.support import PROMPTS


def test_models_lists_the_registered_models(findap: Callable[..., Result]) -> None:
    table = findap("models")
    assert table.exit_code == 0, table.output
    assert "smollm2-135m-instruct" in table.stdout and "registered" in table.stdout

    raw = json.loads(findap("models", "--json").stdout)
    assert {"id": "smollm2-135m-instruct", "source": "registered"}.items() <= raw["data"][0].items()


def test_datasets_create_list_status_and_download(
    findap: Callable[..., Result], completed_batch: str, tmp_path: Path
) -> None:
    created = findap("datasets", "create", "--name", "fin-dpo", "--batch", completed_batch)
    assert created.exit_code == 0, created.output
    assert "fin-dpo v1" in created.stdout and "12 (fap 6, scp 6)" in created.stdout
    dataset_id = created.stdout.split("dataset ", 1)[1].split()[0]
    assert dataset_id.startswith("ds_")

    scp_only = findap(
        "datasets", "create", "--name", "fin-dpo", "--batch", completed_batch, "--kind", "scp"
    )
    assert "fin-dpo v2" in scp_only.stdout and "6 (fap 0, scp 6)" in scp_only.stdout

    listed = findap("datasets", "list", "--name", "fin-dpo")
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.index(" 2 ") < listed.stdout.index(" 1 ")  # newest first
    assert dataset_id in listed.stdout

    status = findap("status", dataset_id)
    assert status.exit_code == 0 and "fin-dpo v1" in status.stdout

    target = tmp_path / "fin-dpo.jsonl"
    downloaded = findap("download", dataset_id, "-o", str(target), "--format", "openai")
    assert downloaded.stdout == f"wrote 12 lines to {target}\n"
    assert "preferred_output" in json.loads(target.read_text().splitlines()[0])


def test_dataset_of_an_unknown_batch_is_a_422_naming_it(findap: Callable[..., Result]) -> None:
    result = findap("datasets", "create", "--name", "x", "--batch", "batch_nope")
    assert result.exit_code == 1
    assert result.stderr == "error: 422 batch_ids[0]: batch 'batch_nope' not found\n"


def test_dataset_of_a_running_batch_is_a_409_saying_it_still_runs(
    findap: Callable[..., Result], tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps(PROMPTS[0]) + "\n")
    batch_id = findap("submit", str(prompts), *CANNED_FLAGS, "-q").stdout.strip()
    result = findap("datasets", "create", "--name", "x", "--batch", batch_id)
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: 409 batch_ids[0]: batch {batch_id} is still queued: its pairs are not all made "
        "yet; freeze it once it has completed, or cancel it to freeze the pairs it made\n"
    )


def test_datasets_create_uploads_an_eval_file_and_drops_the_pairs_it_matches(
    findap: Callable[..., Result], completed_batch: str, tmp_path: Path
) -> None:
    held_out = tmp_path / "held_out.jsonl"
    questions = ["WHAT is 2+2? A) 5, B) 4 (case 0)", "what is 2 + 2 a 5 b 4 case 1"]
    held_out.write_text(
        "".join(json.dumps({"question": q, "reference_answer": "B"}) + "\n" for q in questions)
    )
    created = findap(
        "datasets",
        "create",
        "--name",
        "clean",
        "--batch",
        completed_batch,
        "--decontaminate-against",
        str(held_out),
        "--decontaminate",
    )
    assert created.exit_code == 0, created.output
    assert f"uploaded {held_out} as file_" in created.stdout
    assert "8 (fap 4, scp 4)" in created.stdout
    assert "4 of 12 pairs match 2 eval questions (13-gram 0, same question 4); 4" in created.stdout
    assert "dropped" in created.stdout

    unknown = findap(
        "datasets", "create", "--name", "x", "--batch", completed_batch,
        "--decontaminate-against", "file_nope",
    )  # fmt: skip
    assert unknown.exit_code == 1
    assert unknown.stderr == "error: 422 decontaminate_against[0]: file 'file_nope' not found\n"
