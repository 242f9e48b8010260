"""Prompts that bring their own answers: what the API accepts, and the 422s it gives."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.kernel.models import Chunk, Prompt

QUESTION = (
    "A stock's beta is 1.2, the risk-free rate is 3% and the market risk premium is 5%. "
    "Its required return under the CAPM is:\nA. 6.0%\nB. 9.0%\nC. 9.6%"
)
RIGHT = (
    "Step 1: The CAPM gives the required return as the risk-free rate plus beta times the "
    "market risk premium.\n"
    "Step 2: Beta times the premium is 1.2 x 5% = 6%.\n"
    "Step 3: Adding the risk-free rate, 3% + 6% = 9%.\n"
    "Answer: B"
)
WRONG = (
    "Step 1: The CAPM adds beta times the market return to the risk-free rate.\n"
    "Step 2: 1.2 x 5% = 6%, plus 3% is 9%, plus the 0.6% beta adjustment gives 9.6%.\n"
    "Answer: C"
)


def post(client: TestClient, prompts: list[dict], **options: object):  # type: ignore[no-untyped-def]
    return client.post(
        "/v1/batches", json={"prompts": prompts, "judge": {"engine": "rule"}, **options}
    )


def given(answers: list, reference: str | None = "B") -> dict:
    prompt: dict = {"question": QUESTION, "answers": answers}
    if reference is not None:
        prompt["reference_answer"] = reference
    return prompt


def stored(session_factory) -> int:  # type: ignore[no-untyped-def]
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(Prompt)) or 0


def test_given_answers_as_texts_or_objects_are_stored_with_the_prompt(
    client: TestClient, session_factory
) -> None:  # type: ignore[no-untyped-def]
    gold = {"text": WRONG, "gold": {"correct": False, "first_wrong_step": 1}}
    response = post(client, [given([RIGHT, gold])])
    assert response.status_code == 201, response.text
    with session_factory() as session:
        prompt = session.scalars(select(Prompt)).one()
        assert prompt.answers == [
            {"text": RIGHT, "gold": None},
            {"text": WRONG, "gold": {"correct": False, "first_wrong_step": 1}},
        ]
        # Nothing to sample: the chunk waits for its judge, not for a policy worker.
        assert session.scalars(select(Chunk.stage)).one() == "judge"


def test_gold_keeps_an_explicit_null_step_and_leaves_out_a_missing_one(
    client: TestClient, session_factory
) -> None:  # type: ignore[no-untyped-def]
    answers = [
        {"text": WRONG, "gold": {"correct": False, "first_wrong_step": None}},
        {"text": WRONG, "gold": {"correct": False}},
        {"text": RIGHT, "gold": {"correct": True}},
    ]
    assert post(client, [given(answers)]).status_code == 201
    with session_factory() as session:
        golds = [a["gold"] for a in session.scalars(select(Prompt.answers)).one()]
    assert golds == [
        {"correct": False, "first_wrong_step": None},
        {"correct": False},
        {"correct": True},
    ]


def test_mixed_batch_samples_only_the_prompts_without_answers(
    client: TestClient, session_factory
) -> None:  # type: ignore[no-untyped-def]
    sampled = {"question": QUESTION, "reference_answer": "B"}
    response = post(client, [given([RIGHT]), sampled, given([WRONG])], chunk_size=1)
    assert response.status_code == 201, response.text
    with session_factory() as session:
        stages = list(session.scalars(select(Chunk.stage).order_by(Chunk.index)))
    assert stages == ["judge", "sample", "judge"]


def test_jsonl_upload_carries_given_answers(client: TestClient, session_factory) -> None:  # type: ignore[no-untyped-def]
    lines = [
        json.dumps(given([RIGHT, {"text": WRONG, "gold": {"correct": False}}])),
        json.dumps({"question": QUESTION, "reference_answer": "B"}),
    ]
    response = client.post(
        "/v1/batches",
        files={"file": ("p.jsonl", "\n".join(lines).encode(), "application/jsonl")},
        data={"options": json.dumps({"judge": {"engine": "rule"}})},
    )
    assert response.status_code == 201, response.text
    with session_factory() as session:
        answers = list(session.scalars(select(Prompt.answers).order_by(Prompt.index)))
    assert answers[0][1] == {"text": WRONG, "gold": {"correct": False}}
    assert answers[1] is None


@pytest.mark.parametrize(
    ("prompt", "detail"),
    [
        (given([]), "prompts[0].answers: List should have at least 1 item after validation"),
        (given(["  \n"]), "prompts[0].answers[0].text: Value error, must not be blank"),
        (given([{"text": ""}]), "prompts[0].answers[0].text: String should have at least 1"),
        (
            given([{"text": RIGHT, "gold": {"correct": True}}], reference=None),
            "prompts[0].answers[0].gold: a gold label needs the prompt's reference_answer",
        ),
        (
            given([RIGHT, {"text": WRONG, "gold": {"correct": False, "first_wrong_step": 3}}]),
            "prompts[0].answers[1].gold.first_wrong_step: step 3 is outside the answer, which "
            "has 2 step(s)",
        ),
        (
            given([{"text": WRONG, "gold": {"correct": False, "first_wrong_step": 0}}]),
            "prompts[0].answers[0].gold.first_wrong_step: Input should be greater than or equal",
        ),
        (
            given([{"text": RIGHT, "gold": {"correct": True, "first_wrong_step": 2}}]),
            "a correct answer has no wrong step",
        ),
        (
            given([{"text": RIGHT, "gold": {"correct": "maybe"}}]),
            "prompts[0].answers[0].gold.correct: Input should be a valid boolean",
        ),
        (given([{"text": RIGHT, "score": 1}]), "prompts[0].answers[0].score: Extra inputs"),
    ],
)
def test_bad_given_answers_are_a_422_naming_the_field_and_store_nothing(
    client: TestClient, session_factory, prompt: dict, detail: str
) -> None:  # type: ignore[no-untyped-def]
    response = post(client, [{"question": QUESTION, "reference_answer": "B"}, prompt])
    assert response.status_code == 422
    assert detail.replace("prompts[0]", "prompts[1]") in response.json()["detail"]
    assert stored(session_factory) == 0


def test_more_answers_than_max_samples_per_prompt_is_a_422(
    client: TestClient, session_factory
) -> None:  # type: ignore[no-untyped-def]
    limit = client.app.state.settings.max_samples_per_prompt  # type: ignore[attr-defined]
    response = post(client, [given([RIGHT] * (limit + 1))])
    assert response.status_code == 422
    assert response.json()["detail"] == (
        f"prompts[0].answers: at most {limit} answers per prompt (MAX_SAMPLES_PER_PROMPT), "
        f"got {limit + 1}"
    )
    assert stored(session_factory) == 0


def test_a_batch_of_given_answers_asks_for_its_judge_not_for_a_policy(
    client: TestClient,
) -> None:  # type: ignore[no-untyped-def]
    response = client.post(
        "/v1/batches",
        json={
            "prompts": [given([RIGHT, WRONG])],
            "judge": {"model": "not-served-yet", "engine": "hf"},
        },
    )
    assert response.status_code == 201, response.text
    notes = client.get(f"/v1/batches/{response.json()['id']}").json()["notes"]
    assert not any("policy" in note for note in notes)
    assert notes == [
        "no worker serves judge hf:not-served-yet: start `findap worker --judge hf:not-served-yet` "
        "(in the folder of `findap up` it joins it; elsewhere set DATABASE_URL and REDIS_URL)"
    ]
