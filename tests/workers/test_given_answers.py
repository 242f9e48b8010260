"""Given answers through the whole service: judged, analysed and paired like sampled ones."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.kernel.config import Settings
from tests.workers.canned_engines import CORRECTION, RIGHT, WRONG, CannedJudge, CannedPolicy
from tests.workers.test_pipeline import (  # noqa: F401  (the canned fixture)
    CANNED_OPTIONS,
    QUESTION,
    canned,
    pairs_of,
    submit,
)
from workers.worker import run_worker


def judge_only(settings: Settings, judge: str) -> None:
    """A burst worker that serves only this judge: no policy is loaded or needed."""
    run_worker(settings.model_copy(update={"policies": [], "judges": [judge]}), burst=True)


def test_judge_only_batch_of_given_answers_needs_no_policy_worker(
    client: TestClient, settings: Settings
) -> None:
    prompts = [
        {"question": QUESTION, "reference_answer": "B", "answers": [RIGHT, WRONG, WRONG]},
        {"question": QUESTION + " (again)", "reference_answer": "B", "answers": [WRONG]},
    ]
    batch_id = submit(client, prompts, judge={"engine": "rule"})
    judge_only(settings, "rule:rule")

    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["status"] == "completed", batch["error"]
    assert batch["sample_count"] == 4
    assert batch["verdict_counts"]["fap"] == {
        "correct": 1,
        "wrong": 3,
        "unparseable": 0,
        "truncated": 0,
    }
    assert batch["pair_counts"] == {"fap": 1, "scp": 0, "total": 1}
    assert batch["calibration"] is None  # no gold labels: nothing to measure the judge on
    samples = client.get(f"/v1/batches/{batch_id}/samples").json()["data"]
    assert [(s["text"], s["sample_index"]) for s in samples] == [
        (RIGHT, 0),
        (WRONG, 1),
        (WRONG, 2),
        (WRONG, 0),
    ]
    assert {(s["source"], s["finish_reason"], s["policy_model"]) for s in samples} == {
        ("given", None, "given")
    }
    assert batch["usage"]["policy_completion_tokens"] == 0
    (pair,) = pairs_of(client, batch_id)
    assert pair["source"] == "given" and pair["policy_model"] is None and pair["sampling"] is None
    assert pair["chosen"][0]["content"] == RIGHT and pair["rejected"][0]["content"] == WRONG


def test_given_and_sampled_prompts_in_one_batch(
    client: TestClient,
    settings: Settings,
    canned: tuple[CannedPolicy, CannedJudge],  # noqa: F811
) -> None:
    policy, judge = canned
    prompts = [
        {"id": "given", "question": QUESTION, "reference_answer": "B", "answers": [WRONG, RIGHT]},
        {"id": "sampled", "question": QUESTION + " (sampled)", "reference_answer": "B"},
    ]
    batch_id = submit(client, prompts, **CANNED_OPTIONS)
    run_worker(
        settings.model_copy(
            update={"policies": ["hf:canned-policy"], "judges": ["hf:canned-judge"]}
        ),
        burst=True,
    )

    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["status"] == "completed", batch["error"]
    assert policy.calls == [1]  # the given prompt is not sampled
    assert judge.calls == [4, 2]  # all four answers judged together, then both wrong ones
    assert batch["pair_counts"] == {"fap": 2, "scp": 2, "total": 4}
    samples = client.get(f"/v1/batches/{batch_id}/samples").json()["data"]
    # Sampled answers are stored at sampling, given ones when the judge stage starts.
    assert [(s["custom_id"], s["source"], s["sample_index"]) for s in samples] == [
        ("sampled", "policy", 0),
        ("sampled", "policy", 1),
        ("given", "given", 0),
        ("given", "given", 1),
    ]
    given_wrong = samples[2]
    assert given_wrong["fap"]["verdict"] == "wrong"
    assert given_wrong["scp"]["correction"] == CORRECTION
    sources = {(p["custom_id"], p["kind"]): p["source"] for p in pairs_of(client, batch_id)}
    assert sources == {
        ("given", "fap"): "given",
        ("given", "scp"): "given",
        ("sampled", "fap"): "policy",
        ("sampled", "scp"): "policy",
    }


def test_cancel_stops_a_chunk_of_given_answers_that_has_not_started(
    client: TestClient, settings: Settings
) -> None:
    prompts = [{"question": QUESTION, "reference_answer": "B", "answers": [RIGHT, WRONG]}]
    batch_id = submit(client, prompts, judge={"engine": "rule"})
    assert client.post(f"/v1/batches/{batch_id}/cancel").status_code == 200
    judge_only(settings, "rule:rule")

    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["status"] == "cancelled"
    assert batch["sample_count"] == 0 and batch["chunk_counts"]["cancelled"] == 1
