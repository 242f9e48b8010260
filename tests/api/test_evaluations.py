"""Evaluations over the API: a hidden batch through the real worker path (canned policy, rule
judge), the report's figures, results as a page, JSONL and Parquet, and every refusal."""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.kernel.config import Settings
from app.kernel.eval_scores import wilson_interval
from app.kernel.models import Batch, Chunk, Evaluation, Prompt, Sample
from tests.api.test_files import upload
from tests.api.test_model_allow_list import trained_model_of
from tests.workers.canned_engines import RIGHT, WRONG
from tests.workers.test_pipeline import CANNED_OPTIONS, PROMPTS, canned, serve, submit  # noqa: F401

RULE = {"model": "rule"}
QUESTION = "What is 2 + 2?\nA. 5\nB. 4"
# The canned policy answers B (right) first, A (wrong) second: references B are answered
# correctly by the greedy answer, references A are not.
QUESTIONS = [
    {
        "id": f"arith-{i}",
        "question": f"{QUESTION} ({i})",
        "reference_answer": "B",
        "metadata": {"task": "arith"},
    }
    for i in range(4)
] + [{"question": f"{QUESTION} (trick {i})", "reference_answer": "A"} for i in range(2)]


def evaluate(client: TestClient, **body: object) -> dict:
    response = client.post(
        "/v1/evaluations", json={"model": "canned-policy", "judge": RULE, **body}
    )
    assert response.status_code == 201, response.text
    return response.json()


def serve_policy(settings: Settings) -> None:
    serve(settings, policy="hf:canned-policy")


def stored(session_factory) -> dict[str, int]:
    with session_factory() as session:
        return {
            model.__name__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Evaluation, Batch, Chunk, Prompt)
        }


@pytest.mark.usefixtures("canned")
def test_greedy_evaluation_reports_accuracy_per_task_with_wilson_intervals(
    client: TestClient,
    settings: Settings,
    session_factory,
) -> None:
    created = evaluate(client, prompts=QUESTIONS)
    assert created["id"].startswith("eval_") and created["object"] == "evaluation"
    assert created["status"] == "queued" and created["temperature"] == 0.0
    assert created["accuracy"] is None and created["source"] == {"kind": "prompts", "id": None}
    serve_policy(settings)

    report = client.get(f"/v1/evaluations/{created['id']}").json()
    assert report["status"] == "completed"
    assert report["request_counts"] == {"total": 6, "completed": 6, "failed": 0}
    assert report["questions"] == 6
    low, high = wilson_interval(4, 6)
    assert report["accuracy"] == pytest.approx({"value": 4 / 6, "low": low, "high": high, "n": 6})
    assert report["pass_at_k"] is None and report["majority"] is None
    assert report["by_task"]["arith"]["accuracy"]["value"] == 1.0
    assert report["by_task"]["arith"]["questions"] == 4
    assert report["by_task"]["default"]["accuracy"]["value"] == 0.0
    assert report["by_task"]["default"]["accuracy"]["high"] == pytest.approx(
        wilson_interval(0, 2)[1]
    )
    assert report["truncated"] == 0 and report["unparseable"] == 0
    assert (
        report["usage"]["completion_tokens"] == 6 * 12
        and report["usage"]["prompt_tokens"] == 6 * 20
    )
    # The hidden batch is no batch of the project's: not listed, not found, no pairs.
    assert client.get("/v1/batches").json()["data"] == []
    with session_factory() as session:
        batch = session.scalars(select(Batch)).one()
        assert batch.kind == "evaluation"
        assert {s.policy_prompt_version for s in session.scalars(select(Sample))} == {"policy-v1"}
    assert client.get(f"/v1/batches/{batch.id}").status_code == 404

    page = client.get(f"/v1/evaluations/{created['id']}/results", params={"limit": 4}).json()
    assert [row["id"] for row in page["data"]] == ["arith-0", "arith-1", "arith-2", "arith-3"]
    assert page["has_more"] and page["last_id"] == "arith-3"
    first = page["data"][0]
    assert first["answer"] == RIGHT and first["verdict"] == "correct"
    assert (
        first["finish_reason"] == "stop" and first["task"] == "arith" and first["samples"] is None
    )
    rest = client.get(
        f"/v1/evaluations/{created['id']}/results", params={"after": page["last_id"]}
    ).json()
    assert [row["id"] for row in rest["data"]] == ["4", "5"] and not rest["has_more"]
    assert rest["data"][0]["verdict"] == "wrong" and rest["data"][0]["task"] == "default"

    lines = client.get(f"/v1/evaluations/{created['id']}/results", params={"format": "jsonl"})
    assert lines.status_code == 200
    rows = [json.loads(line) for line in lines.text.splitlines()]
    assert [row["verdict"] for row in rows] == ["correct"] * 4 + ["wrong"] * 2
    table = pq.read_table(
        io.BytesIO(
            client.get(
                f"/v1/evaluations/{created['id']}/results", params={"format": "parquet"}
            ).content
        )
    )
    assert table.num_rows == 6 and table.column("id").to_pylist()[4] == "4"


@pytest.mark.usefixtures("canned")
def test_k_samples_report_pass_at_k_and_majority_vote(
    client: TestClient,
    settings: Settings,
) -> None:
    created = evaluate(client, prompts=QUESTIONS, samples=2, seed=7)
    assert created["temperature"] == 0.8
    serve_policy(settings)
    report = client.get(f"/v1/evaluations/{created['id']}").json()
    # Every question gets B then A: one of two right whatever the reference.
    assert report["accuracy"]["value"] == 0.5
    assert report["pass_at_k"]["value"] == 1.0
    # A tie of one vote each goes to the answer sampled first (B): right for the B references.
    assert report["majority"]["value"] == pytest.approx(4 / 6)
    assert report["by_task"]["default"]["majority"]["value"] == 0.0
    row = client.get(f"/v1/evaluations/{created['id']}/results").json()["data"][0]
    assert [s["answer"] for s in row["samples"]] == [RIGHT, WRONG]
    assert [s["verdict"] for s in row["samples"]] == ["correct", "wrong"] and row["correct"] == 1


@pytest.mark.usefixtures("canned")
def test_direct_mode_answers_in_the_direct_prompt(
    client: TestClient,
    settings: Settings,
    session_factory,
) -> None:
    created = evaluate(client, prompts=QUESTIONS[:3], mode="direct", chunk_size=1)
    assert created["mode"] == "direct"
    serve_policy(settings)
    with session_factory() as session:
        versions = {s.policy_prompt_version for s in session.scalars(select(Sample))}
        chunks = session.scalar(select(func.count()).select_from(Chunk))
    assert versions == {"direct-v1"}
    assert chunks == 3  # chunk_size 1: a chunk (and an engine call) per question
    assert client.get(f"/v1/evaluations/{created['id']}").json()["status"] == "completed"


@pytest.mark.usefixtures("canned")
def test_an_eval_file_and_a_dataset_are_sources_of_questions(
    client: TestClient,
    settings: Settings,
) -> None:
    stored_file = upload(client, "eval", QUESTIONS).json()
    from_file = evaluate(client, file_id=stored_file["id"])
    assert from_file["source"] == {"kind": "file", "id": stored_file["id"]}
    assert from_file["request_counts"]["total"] == 6

    batch_id = submit(client, PROMPTS, **CANNED_OPTIONS)
    serve(settings, policy="hf:canned-policy", judge="hf:canned-judge")
    dataset = client.post("/v1/datasets", json={"name": "round1", "batch_ids": [batch_id]}).json()
    from_dataset = evaluate(client, dataset_id=dataset["id"])
    assert from_dataset["request_counts"]["total"] == len(PROMPTS)
    serve_policy(settings)
    report = client.get(f"/v1/evaluations/{from_dataset['id']}").json()
    assert report["accuracy"]["value"] == 1.0 and report["questions"] == len(PROMPTS)


def test_list_by_model_and_cancel(client: TestClient, settings: Settings) -> None:
    first = evaluate(client, prompts=QUESTIONS)
    assert first["notes"][0].startswith("no worker serves policy hf:canned-policy: start")
    evaluate(client, prompts=QUESTIONS, model="another-policy")
    listed = client.get("/v1/evaluations", params={"model": "canned-policy"}).json()
    assert [e["id"] for e in listed["data"]] == [first["id"]]
    assert len(client.get("/v1/evaluations").json()["data"]) == 2

    cancelled = client.post(f"/v1/evaluations/{first['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = client.post(f"/v1/evaluations/{first['id']}/cancel")
    assert again.status_code == 409 and "evaluation" in again.json()["detail"]
    assert client.get("/v1/evaluations/eval_nope").status_code == 404


def test_evaluations_do_not_take_the_projects_open_batch_slots(
    client: TestClient, settings: Settings
) -> None:
    for _ in range(settings.max_open_batches_per_project + 1):
        evaluate(client, prompts=QUESTIONS[:1])
    assert (
        client.post("/v1/batches", json={"prompts": PROMPTS, **CANNED_OPTIONS}).status_code == 201
    )


def test_bad_input_is_refused_naming_the_field_and_nothing_is_stored(
    client: TestClient,
    session_factory,
) -> None:
    theirs = trained_model_of(session_factory, "other", path="/nowhere")
    sft = upload(client, "sft", [{"prompt": "p", "completion": "c"}]).json()
    cases: list[tuple[dict, int, str]] = [
        (
            {"model": "no-such-model", "prompts": QUESTIONS},
            422,
            "model: 'no-such-model' is not a model",
        ),
        ({"model": theirs, "prompts": QUESTIONS}, 422, f"model: {theirs!r} is not a model"),
        (
            {"prompts": QUESTIONS, "samples": 0},
            422,
            "samples: Input should be greater than or equal to 1",
        ),
        (
            {"prompts": QUESTIONS, "samples": 65},
            422,
            "samples: Input should be less than or equal to 64",
        ),
        ({}, 422, "give exactly one source of questions, got none"),
        ({"prompts": QUESTIONS, "file_id": sft["id"]}, 422, "got prompts, file_id"),
        ({"prompts": []}, 422, "prompts: List should have at least 1 item"),
        (
            {"prompts": [{"question": "2 + 2?"}]},
            422,
            "prompts[0].reference_answer: required",
        ),
        (
            {"file_id": sft["id"]},
            422,
            "has purpose 'sft'; an evaluation reads a file of purpose 'eval'",
        ),
        ({"file_id": "file_nope"}, 404, "file 'file_nope' not found"),
        ({"dataset_id": "ds_nope"}, 404, "dataset 'ds_nope' not found"),
        ({"prompts": QUESTIONS, "mode": "essay"}, 422, "mode: Input should be 'cot' or 'direct'"),
        ({"prompts": QUESTIONS, "engine": "rule"}, 422, "engine: Value error, must be one of"),
        ({"prompts": QUESTIONS, "judge": {"model": "no-judge"}}, 422, "judge.model:"),
    ]
    for body, code, message in cases:
        response = client.post("/v1/evaluations", json={"model": "canned-policy", **body})
        assert response.status_code == code, (body, response.text)
        assert message in response.json()["detail"], (body, response.text)
    assert stored(session_factory) == {"Evaluation": 0, "Batch": 0, "Chunk": 0, "Prompt": 0}


def test_an_eval_file_must_have_lines_and_references(client: TestClient) -> None:
    empty = upload(client, "eval", [])
    assert empty.status_code == 422 and "file: no lines in the upload" in empty.json()["detail"]
    unreferenced = upload(client, "eval", [{"question": "2 + 2?"}])
    assert unreferenced.status_code == 422
    assert "file line 1: reference_answer: Field required" in unreferenced.json()["detail"]


def test_a_retried_evaluation_post_returns_the_first_evaluation_and_stores_nothing_new(
    client: TestClient,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    body = {"model": "canned-policy", "judge": RULE, "prompts": QUESTIONS}
    key = {"Idempotency-Key": "eval-2026-11-30-a"}
    first = client.post("/v1/evaluations", json=body, headers=key)
    before = stored(session_factory)
    again = client.post("/v1/evaluations", json=body, headers=key)
    assert first.status_code == again.status_code == 201, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert stored(session_factory) == before

    other = client.post("/v1/evaluations", json={**body, "mode": "direct"}, headers=key)
    assert other.status_code == 422
    assert other.json()["detail"].startswith("Idempotency-Key: already used")
    assert stored(session_factory) == before
    assert client.post("/v1/evaluations", json=body).json()["id"] != first.json()["id"]
