"""Step labels (`format=prm`) follow reviews: a reviewed answer's labels come from its newest
review, in the batch's export at once and in a dataset's only if the review is older than it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from app.kernel.models import Verdict
from tests.api.test_reviews import STEP_2_FIX, judged_batch, review
from tests.workers.test_pipeline import canned  # noqa: F401  (the canned fixture)

pytestmark = pytest.mark.usefixtures("canned")

WRONG_STEPS = ["2 + 2 makes 5.", "Option A is 5."]
RIGHT_STEPS = ["2 + 2 makes 4.", "Option B is 4."]


def prm(client: TestClient, path: str) -> dict[int, dict]:
    """The rows of a `format=prm` download, by sample id."""
    response = client.get(path, params={"format": "prm"})
    assert response.status_code == 200, response.text
    return {row["sample_id"]: row for row in map(json.loads, response.text.splitlines())}


def labels(rows: dict[int, dict]) -> dict[int, tuple[list[str], list[bool], str, bool]]:
    return {
        sample_id: (row["completions"], row["labels"], row["label_source"], row["reviewed"])
        for sample_id, row in rows.items()
    }


def test_a_reviewed_answers_step_labels_follow_its_newest_review(
    client: TestClient, settings, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from datasets import load_dataset

    batch_id, (right, wrong) = judged_batch(client, settings)
    pairs_path = f"/v1/batches/{batch_id}/pairs"
    assert labels(prm(client, pairs_path)) == {
        right["id"]: (RIGHT_STEPS, [True, True], "final_answer", False),
        wrong["id"]: (WRONG_STEPS[:1], [False], "judge", False),
    }

    # The person moves the first wrong step to step 2: step 1 is right, step 2 wrong.
    assert (
        review(
            client,
            batch_id,
            wrong["id"],
            final_answer_correct=False,
            first_wrong_step=2,
            correction=STEP_2_FIX,
        ).status_code
        == 200
    )
    # And calls the right answer wrong without naming a step: no label, as for the judge's.
    assert review(client, batch_id, right["id"], final_answer_correct=False).status_code == 200
    response = client.get(pairs_path, params={"format": "prm"})
    assert labels(prm(client, pairs_path)) == {
        wrong["id"]: (WRONG_STEPS, [True, False], "review", True),
    }
    path = tmp_path / "prm.jsonl"
    path.write_bytes(response.content)
    rows = load_dataset("json", data_files=str(path), split="train")
    assert rows["labels"] == [[True, False]]
    assert all(len(r["completions"]) == len(r["labels"]) for r in rows)
    assert rows["reviewed"] == [True]

    # The newest review counts: the wrong answer is right after all.
    assert review(client, batch_id, wrong["id"], final_answer_correct=True).status_code == 200
    assert labels(prm(client, pairs_path)) == {
        wrong["id"]: (WRONG_STEPS, [True, True], "review", True),
    }


def test_a_reviewed_answer_the_judge_could_not_read_gets_labels(
    client: TestClient, settings, session_factory
) -> None:  # type: ignore[no-untyped-def]
    batch_id, (right, wrong) = judged_batch(client, settings)
    with session_factory.begin() as session:
        session.execute(
            update(Verdict)
            .where(Verdict.sample_id == wrong["id"], Verdict.kind == "fap")
            .values(outcome="unparseable", verdict=None)
        )
    pairs_path = f"/v1/batches/{batch_id}/pairs"
    assert list(prm(client, pairs_path)) == [right["id"]]
    body = {"final_answer_correct": False, "first_wrong_step": 2, "correction": STEP_2_FIX}
    assert review(client, batch_id, wrong["id"], **body).status_code == 200
    assert labels(prm(client, pairs_path))[wrong["id"]] == (
        WRONG_STEPS,
        [True, False],
        "review",
        True,
    )


def test_a_datasets_step_labels_are_frozen_with_it(client: TestClient, settings) -> None:  # type: ignore[no-untyped-def]
    batch_id, (right, wrong) = judged_batch(client, settings)
    before = client.post("/v1/datasets", json={"name": "before", "batch_ids": [batch_id]})
    assert before.status_code == 201, before.text
    before_path = f"/v1/datasets/{before.json()['id']}/download"
    frozen = prm(client, before_path)
    assert labels(frozen) == {
        right["id"]: (RIGHT_STEPS, [True, True], "final_answer", False),
        wrong["id"]: (WRONG_STEPS[:1], [False], "judge", False),
    }

    body = {"final_answer_correct": False, "first_wrong_step": 2, "correction": STEP_2_FIX}
    assert review(client, batch_id, wrong["id"], **body).status_code == 200
    # Made before the review: the same rows, as its pairs are the same.
    assert prm(client, before_path) == frozen

    after = client.post("/v1/datasets", json={"name": "after", "batch_ids": [batch_id]})
    assert after.status_code == 201, after.text
    after_path = f"/v1/datasets/{after.json()['id']}/download"
    assert labels(prm(client, after_path)) == {
        right["id"]: (RIGHT_STEPS, [True, True], "final_answer", False),
        wrong["id"]: (WRONG_STEPS, [True, False], "review", True),
    }
    # A review newer than the dataset does not change it either.
    assert review(client, batch_id, wrong["id"], final_answer_correct=True).status_code == 200
    assert labels(prm(client, after_path))[wrong["id"]][1] == [True, False]
    assert labels(prm(client, f"/v1/batches/{batch_id}/pairs"))[wrong["id"]][1] == [True, True]
