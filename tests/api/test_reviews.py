"""Reviews over the API: a person's verdict, first wrong step and correction on an answer; the
pairs rebuilt from it, calibration against it, the review queue, and the 4xx for bad input."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select, update

from app.kernel.context import ProcessContext
from app.kernel.models import Chunk, PreferencePair, Review, Sample, Verdict
from app.kernel.models.statuses import ChunkStage, RunStatus
from tests.conftest import api_key, bearer
from tests.workers.canned_engines import CORRECTION, RIGHT, WRONG
from tests.workers.test_pipeline import (  # noqa: F401  (the canned fixture)
    CANNED_OPTIONS,
    QUESTION,
    canned,
    pairs_of,
    serve_canned,
    submit,
)
from workers import chunk_store
from workers.jobs import judge_and_pair

STEP_2_FIX = "Step 2: Option B is 4."

pytestmark = pytest.mark.usefixtures("canned")  # the canned policy and judge serve the batches


def judged_batch(client: TestClient, settings, prompts: int = 1) -> tuple[str, list[dict]]:  # type: ignore[no-untyped-def]
    """A batch the canned models sampled and judged: per question a right and a wrong answer,
    one FAP and one SCP pair (the wrong answer's step 1 corrected)."""
    questions = [
        {"id": f"q{i}", "question": f"{QUESTION} (case {i})", "reference_answer": "B"}
        for i in range(prompts)
    ]
    batch_id = submit(client, questions, **CANNED_OPTIONS)
    serve_canned(settings)
    samples = client.get(f"/v1/batches/{batch_id}/samples").json()["data"]
    return batch_id, samples


def review(client: TestClient, batch_id: str, sample_id: int, **body: object):  # type: ignore[no-untyped-def]
    return client.post(f"/v1/batches/{batch_id}/samples/{sample_id}/review", json=body)


def reviews_stored(session_factory) -> int:  # type: ignore[no-untyped-def]
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(Review)) or 0


def download(client: TestClient, path: str) -> list[dict]:
    response = client.get(path, params={"format": "trl"})
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines()]


def test_moving_the_first_wrong_step_rebuilds_the_answers_pairs_and_keeps_frozen_datasets(
    client: TestClient, settings, session_factory
) -> None:  # type: ignore[no-untyped-def]
    batch_id, (right, wrong) = judged_batch(client, settings)
    before = pairs_of(client, batch_id)
    assert sorted(p["kind"] for p in before) == ["fap", "scp"]
    frozen = client.post("/v1/datasets", json={"name": "before-review", "batch_ids": [batch_id]})
    assert frozen.status_code == 201, frozen.text
    frozen_pairs = download(client, f"/v1/datasets/{frozen.json()['id']}/download")

    response = review(
        client,
        batch_id,
        wrong["id"],
        final_answer_correct=False,
        first_wrong_step=2,
        correction=STEP_2_FIX,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["review"]["reviewer"] == "tests"  # the key's name
    assert body["review"]["before"] == {
        "source": "judge",
        "final_answer_correct": False,
        "first_wrong_step": 1,
        "correction": CORRECTION,
    }
    assert body["review"]["after"] == {
        "final_answer_correct": False,
        "first_wrong_step": 2,
        "correction": STEP_2_FIX,
    }
    assert sorted(body["pairs"]["withdrawn"]) == sorted(p["id"] for p in before)
    assert len(body["pairs"]["created"]) == 2

    after = pairs_of(client, batch_id)
    assert sorted(p["id"] for p in after) == body["pairs"]["created"]
    assert all(p["reviewed"] is True for p in after)  # provenance, flattened into the line
    scp = next(p for p in after if p["kind"] == "scp")
    assert scp["rejected"][0]["content"] == "Step 2: Option A is 5."
    assert scp["chosen"][0]["content"] == STEP_2_FIX
    assert "Step 1: 2 + 2 makes 5." in scp["prompt"][-1]["content"]  # the prefix: step 1
    fap = next(p for p in after if p["kind"] == "fap")
    assert (fap["chosen"][0]["content"], fap["rejected"][0]["content"]) == (RIGHT, WRONG)
    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["pair_counts"] == {"fap": 1, "scp": 1, "total": 2}

    # Frozen before the review: the same pairs, byte for byte.
    assert download(client, f"/v1/datasets/{frozen.json()['id']}/download") == frozen_pairs
    reviewed = client.post(
        "/v1/datasets", json={"name": "reviewed", "batch_ids": [batch_id], "reviewed_only": True}
    )
    assert reviewed.status_code == 201, reviewed.text
    assert reviewed.json()["counts"]["total"] == 2
    assert reviewed.json()["selection"]["reviewed_only"] is True

    # The sample shows the review; the judge's verdicts are as they were.
    shown = client.get(f"/v1/batches/{batch_id}/samples").json()["data"][1]
    assert shown["review"]["first_wrong_step"] == 2
    assert shown["scp"]["wrong_step_number"] == 1


def test_overturning_a_verdict_withdraws_pairs_and_the_newest_review_counts(
    client: TestClient, settings, session_factory
) -> None:  # type: ignore[no-untyped-def]
    batch_id, (right, wrong) = judged_batch(client, settings)
    first = review(client, batch_id, wrong["id"], final_answer_correct=True)
    assert first.status_code == 200, first.text
    # Both answers now correct: no FAP pair, and a correct answer has no SCP pair.
    assert first.json()["pairs"]["created"] == []
    assert pairs_of(client, batch_id) == []
    only_reviewed = client.post(
        "/v1/datasets", json={"name": "none", "batch_ids": [batch_id], "reviewed_only": True}
    )
    assert only_reviewed.status_code == 422
    assert only_reviewed.json()["detail"].startswith("reviewed_only:")

    second = review(
        client, batch_id, wrong["id"], final_answer_correct=False, first_wrong_step=None
    )
    assert second.status_code == 200, second.text
    assert second.json()["review"]["before"]["source"] == "review"
    assert second.json()["review"]["before"]["final_answer_correct"] is True
    kinds = [p["kind"] for p in pairs_of(client, batch_id)]
    assert kinds == ["fap"]  # wrong again, with no wrong step: no SCP pair

    listed = client.get(f"/v1/batches/{batch_id}/samples/{wrong['id']}/reviews").json()
    assert [r["after"]["final_answer_correct"] for r in listed["data"]] == [True, False]
    assert reviews_stored(session_factory) == 2


def test_reviews_move_the_batchs_calibration(client: TestClient, settings) -> None:  # type: ignore[no-untyped-def]
    batch_id, (right, wrong) = judged_batch(client, settings)
    assert client.get(f"/v1/batches/{batch_id}").json()["calibration"] is None

    # The judge said step 1; the person says step 2.
    review(
        client,
        batch_id,
        wrong["id"],
        final_answer_correct=False,
        first_wrong_step=2,
        correction=STEP_2_FIX,
    )
    calibration = client.get(f"/v1/batches/{batch_id}").json()["calibration"]
    assert calibration["fap"]["n"] == 1 and calibration["fap"]["accuracy"] == 1.0
    assert calibration["scp"]["wrong_n"] == 1 and calibration["scp"]["wrong_accuracy"] == 0.0

    # The judge said correct; the person overturns it.
    review(client, batch_id, right["id"], final_answer_correct=False)
    calibration = client.get(f"/v1/batches/{batch_id}").json()["calibration"]
    assert calibration["fap"]["n"] == 2 and calibration["fap"]["accuracy"] == 0.5
    shown = client.get(f"/v1/batches/{batch_id}/samples").json()["data"]
    assert shown[0]["agrees"]["fap"] is False and shown[1]["agrees"]["fap"] is True


def test_a_later_judge_run_does_not_overwrite_a_review_or_bring_back_its_pairs(
    client: TestClient, settings, process: ProcessContext, session_factory
) -> None:  # type: ignore[no-untyped-def]
    batch_id, (right, wrong) = judged_batch(client, settings)
    response = review(
        client,
        batch_id,
        wrong["id"],
        final_answer_correct=False,
        first_wrong_step=2,
        correction=STEP_2_FIX,
    )
    reviewed = sorted(response.json()["pairs"]["created"])

    # Run the judge stage again, its verdicts of the reviewed answer gone (a re-judge).
    with session_factory.begin() as session:
        session.execute(delete(Verdict).where(Verdict.sample_id == wrong["id"]))
        session.execute(
            update(Chunk)
            .where(Chunk.batch_id == batch_id)
            .values(status=RunStatus.QUEUED, stage=ChunkStage.JUDGE, attempts=0)
        )
        chunk_id = session.scalar(select(Chunk.id).where(Chunk.batch_id == batch_id))
    work = process.transaction(
        lambda session: chunk_store.claim_chunk(
            session,
            chunk_id,
            stage=ChunkStage.JUDGE,
            worker_name="again",
            lease_s=60,
            max_attempts=3,
        )
    )
    assert work is not None
    judge_and_pair(process, work)

    with session_factory() as session:
        assert (
            session.scalar(
                select(Verdict.wrong_step_number).where(
                    Verdict.sample_id == wrong["id"], Verdict.kind == "scp"
                )
            )
            == 1
        )  # the judge's own verdict again
        live = session.scalars(
            select(PreferencePair.id).where(
                PreferencePair.batch_id == batch_id, PreferencePair.withdrawn_at.is_(None)
            )
        ).all()
    assert sorted(live) == reviewed
    shown = client.get(f"/v1/batches/{batch_id}/samples").json()["data"][1]
    assert shown["review"]["first_wrong_step"] == 2
    assert client.get(f"/v1/batches/{batch_id}").json()["calibration"]["scp"]["wrong_n"] == 1


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            {"final_answer_correct": False, "first_wrong_step": 3, "correction": "x"},
            "first_wrong_step: must be one of the answer's steps 1..2, got 3",
        ),
        (
            {"final_answer_correct": False, "first_wrong_step": 0, "correction": "x"},
            "first_wrong_step: must be one of the answer's steps 1..2, got 0",
        ),
        (
            {"final_answer_correct": True, "first_wrong_step": 1, "correction": "x"},
            "first_wrong_step: an answer whose final answer is correct has no wrong step",
        ),
        (
            {"final_answer_correct": False, "first_wrong_step": 1},
            "correction: required when first_wrong_step names a step",
        ),
        (
            {"final_answer_correct": False, "first_wrong_step": None, "correction": "x"},
            "correction: only a wrong step has a correction",
        ),
        (
            {"final_answer_correct": False, "first_wrong_step": 1, "correction": "  "},
            "correction: must not be empty",
        ),
        (
            {"final_answer_correct": False, "first_wrong_step": 1, "correction": "2 + 2 makes 5."},
            "correction: the same as step 1",
        ),
        (
            {"final_answer_correct": False, "first_wrong_step": 1, "correction": "y" * 500},
            "correction: 500 characters, more than one step's worth",
        ),
        ({"final_answer_correct": "perhaps"}, "final_answer_correct"),
        ({"first_wrong_step": 1, "correction": "x"}, "final_answer_correct"),
        ({"final_answer_correct": False, "verdict": "wrong"}, "verdict"),
    ],
)
def test_a_review_that_does_not_fit_the_answer_is_refused_and_nothing_stored(
    client: TestClient, settings, session_factory, body: dict, detail: str
) -> None:  # type: ignore[no-untyped-def]
    batch_id, (right, wrong) = judged_batch(client, settings)
    before = pairs_of(client, batch_id)
    response = client.post(f"/v1/batches/{batch_id}/samples/{wrong['id']}/review", json=body)
    assert response.status_code == 422, response.text
    assert detail in response.json()["detail"]
    assert reviews_stored(session_factory) == 0
    assert pairs_of(client, batch_id) == before


def test_another_projects_batch_and_answers_are_not_found(
    client: TestClient, settings, session_factory
) -> None:  # type: ignore[no-untyped-def]
    batch_id, (right, wrong) = judged_batch(client, settings)
    other = bearer(api_key(session_factory, project="other"))
    body = {"final_answer_correct": True}
    path = f"/v1/batches/{batch_id}/samples/{wrong['id']}"
    response = client.post(f"{path}/review", json=body, headers=other)
    assert response.status_code == 404
    assert response.json()["detail"] == f"batch {batch_id!r} not found"
    assert client.get(f"{path}/reviews", headers=other).status_code == 404
    assert client.get(f"/v1/batches/{batch_id}/review-queue", headers=other).status_code == 404

    # An answer of another batch, under this batch's id.
    second_id, (elsewhere, _) = judged_batch(client, settings)
    response = review(client, batch_id, elsewhere["id"], final_answer_correct=True)
    assert response.status_code == 404
    assert response.json()["detail"] == f"sample {elsewhere['id']} not found in batch {batch_id!r}"
    assert reviews_stored(session_factory) == 0


def test_the_review_queue_puts_doubtful_answers_first_and_leaves_out_reviewed_ones(
    client: TestClient, settings, session_factory
) -> None:  # type: ignore[no-untyped-def]
    batch_id, samples = judged_batch(client, settings, prompts=3)
    ids = [s["id"] for s in samples]  # right, wrong, right, wrong, right, wrong
    unparseable, failed, disagreeing, by_rule = ids[5], ids[3], ids[1], ids[2]
    with session_factory.begin() as session:
        session.execute(
            update(Verdict)
            .where(Verdict.sample_id == unparseable, Verdict.kind == "fap")
            .values(outcome="unparseable", verdict=None)
        )
        session.execute(
            update(Verdict)
            .where(Verdict.sample_id == failed, Verdict.kind == "scp")
            .values(outcome="failed_validation", reason="prefix not in the answer")
        )
        # The rollouts name step 2 where the judge named step 1.
        rollout = session.scalars(
            select(Verdict).where(Verdict.sample_id == disagreeing, Verdict.kind == "scp")
        ).one()
        session.add(
            Verdict(
                batch_id=batch_id,
                sample_id=disagreeing,
                kind="rollout",
                outcome="parsed",
                wrong_step_number=2,
                wrong_step="Step 2: Option A is 5.",
                raw_output="",
                judge_model=rollout.judge_model,
                prompt_version="rollout-v1",
            )
        )
        # The judge calls a right answer (Answer: B, reference B) wrong; the rule says correct.
        session.execute(
            update(Verdict)
            .where(Verdict.sample_id == by_rule, Verdict.kind == "fap")
            .values(verdict="wrong")
        )

    queue = client.get(f"/v1/batches/{batch_id}/review-queue").json()
    assert [item["id"] for item in queue["data"]] == [
        unparseable,
        failed,
        disagreeing,
        by_rule,
        ids[0],
        ids[4],
    ]
    assert [item["reasons"] for item in queue["data"][:4]] == [
        ["judge_unparseable"],
        ["failed_validation"],
        ["rollout_disagreement"],
        ["rule_disagreement"],
    ]
    assert queue["data"][0]["sample"]["text"] == WRONG

    first = client.get(f"/v1/batches/{batch_id}/review-queue", params={"limit": 2}).json()
    assert [item["id"] for item in first["data"]] == [unparseable, failed]
    assert first["has_more"] is True
    rest = client.get(
        f"/v1/batches/{batch_id}/review-queue", params={"limit": 10, "after": first["last_id"]}
    ).json()
    assert [item["id"] for item in rest["data"]] == [disagreeing, by_rule, ids[0], ids[4]]
    assert rest["has_more"] is False

    assert review(client, batch_id, failed, final_answer_correct=False).status_code == 200
    left = client.get(f"/v1/batches/{batch_id}/review-queue").json()["data"]
    assert failed not in [item["id"] for item in left]
    assert len(left) == 5
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Sample)) == 6
