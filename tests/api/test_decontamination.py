"""Decontamination: datasets checked against eval files (and cleaned of the pairs that match),
and eval uploads that report their overlap with the project's datasets."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from sqlalchemy import select, update

from app.kernel.config import Settings
from app.kernel.models import Dataset, PreferencePair, Prompt
from app.main import create_app
from tests.api.stored_pairs import PairSpec, store_pairs
from tests.api.test_files import upload
from tests.conftest import api_key, bearer, project_id
from tests.dashboard.forms import sign_in_client

EVAL_QUESTIONS = [
    "What is the Macaulay duration of a five-year zero-coupon bond?",
    "A bond with a face value of 1,000 pays an annual coupon of 5 percent and matures in ten "
    "years; what is its price if yields rise to 6 percent?",
    "Which ratio measures a firm's ability to pay short-term obligations?",
]
SPAN_13 = "pays an annual coupon of 5 percent and matures in ten years what"
SPAN_12 = "pays an annual coupon of 5 percent and matures in ten years"

TRAINING_QUESTIONS = [
    "what is the MACAULAY duration of a five year zero coupon bond",  # exact, normalised
    f"Read the term sheet. The note {SPAN_13} is the right discount rate to use here?",  # n-gram
    f"The note {SPAN_12}; how would you hedge it against rate moves?",  # 12 words: clean
    "What is the Macaulay duration of a five-year coupon bond?",  # one word off: clean
    "How is free cash flow to equity computed?",  # clean
]


def eval_file(client: TestClient, questions: list[str] = EVAL_QUESTIONS) -> str:
    lines = [{"question": q, "reference_answer": "B"} for q in questions]
    response = upload(client, "eval", lines, name="eval.jsonl")
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def training_batch(session_factory) -> str:  # type: ignore[no-untyped-def]
    specs = [PairSpec(question=q, custom_id=f"q{n}") for n, q in enumerate(TRAINING_QUESTIONS)]
    return store_pairs(session_factory, project_id(session_factory), specs)


@pytest.fixture
def other(settings: Settings, redis: Redis, session_factory) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """A client of another project."""
    with TestClient(create_app(settings), headers=bearer(api_key(session_factory, "other"))) as c:
        yield c


def downloaded_questions(client: TestClient, dataset_id: str) -> list[str]:
    body = client.get(f"/v1/datasets/{dataset_id}/download").text
    return [json.loads(line)["prompt"][-1]["content"] for line in body.splitlines()]


def test_dataset_reports_pairs_sharing_an_ngram_or_the_normalised_question(
    client: TestClient,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    batch_id = training_batch(session_factory)
    file_id = eval_file(client)
    response = client.post(
        "/v1/datasets",
        json={"name": "checked", "batch_ids": [batch_id], "decontaminate_against": [file_id]},
    )
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert dataset["contamination"] == {
        "eval_files": [file_id],
        "ngram_size": 13,
        "eval_questions": 3,
        "questions_matching": 2,
        "pairs_checked": 5,
        "ngram": 1,
        "exact_question": 1,
        "pairs_flagged": 2,
        "pairs_dropped": 0,
    }
    assert dataset["counts"]["total"] == 5  # reported, not dropped
    assert (
        client.get(f"/v1/datasets/{dataset['id']}").json()["contamination"]
        == (dataset["contamination"])
    )
    plain = client.post("/v1/datasets", json={"name": "plain", "batch_ids": [batch_id]}).json()
    assert plain["contamination"] is None


def test_decontaminate_drops_exactly_the_flagged_pairs_from_the_download(
    client: TestClient,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    batch_id = training_batch(session_factory)
    file_id = eval_file(client)
    response = client.post(
        "/v1/datasets",
        json={
            "name": "clean",
            "batch_ids": [batch_id],
            "decontaminate_against": [file_id],
            "decontaminate": True,
        },
    )
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert dataset["contamination"]["pairs_flagged"] == 2
    assert dataset["contamination"]["pairs_dropped"] == 2
    assert dataset["counts"] == {"fap": 3, "scp": 0, "total": 3, "filtered_out": 0}
    assert sorted(downloaded_questions(client, dataset["id"])) == sorted(TRAINING_QUESTIONS[2:])


def test_chat_prompts_match_on_user_messages_and_the_prompts_question(
    client: TestClient,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    batch_id = training_batch(session_factory)
    with session_factory.begin() as session:
        pairs = {
            question: pair_id
            for pair_id, question in session.execute(
                select(PreferencePair.id, Prompt.question).join(
                    Prompt, Prompt.id == PreferencePair.prompt_id
                )
            )
        }
        chats = {
            # An SCP-style prompt: the question plus reasoning so far, after a system message
            # that quotes an eval question (system text is instructions, not the prompt).
            TRAINING_QUESTIONS[0]: [
                {"role": "system", "content": EVAL_QUESTIONS[1]},
                {"role": "user", "content": f"{TRAINING_QUESTIONS[0]}\n\nStep 1: discount."},
            ],
            # A few-shot prompt whose second user turn carries the 13-word span.
            TRAINING_QUESTIONS[4]: [
                {"role": "user", "content": "Example question"},
                {"role": "assistant", "content": "Example answer"},
                {"role": "user", "content": f"Now this one: {SPAN_13.upper()}?"},
            ],
            # A system message alone matches nothing.
            TRAINING_QUESTIONS[3]: [
                {"role": "system", "content": EVAL_QUESTIONS[1]},
                {"role": "user", "content": TRAINING_QUESTIONS[3]},
            ],
        }
        for question, messages in chats.items():
            session.execute(
                update(PreferencePair)
                .where(PreferencePair.id == pairs[question])
                .values(prompt=messages)
            )
    file_id = eval_file(client)
    dataset = client.post(
        "/v1/datasets",
        json={"name": "chats", "batch_ids": [batch_id], "decontaminate_against": [file_id]},
    ).json()
    found = dataset["contamination"]
    assert (found["exact_question"], found["ngram"], found["pairs_flagged"]) == (1, 2, 3)


@pytest.mark.parametrize("decontaminate", [False, True])
def test_bad_eval_file_ids_are_refused_and_nothing_is_stored(
    client: TestClient,
    other: TestClient,
    session_factory,  # type: ignore[no-untyped-def]
    decontaminate: bool,
) -> None:
    batch_id = training_batch(session_factory)
    good = eval_file(client)
    sft = upload(client, "sft", [{"prompt": "q", "completion": "a"}]).json()["id"]
    theirs = eval_file(other)
    cases = {
        "file_nope": "decontaminate_against[1]: file 'file_nope' not found",
        theirs: f"decontaminate_against[1]: file '{theirs}' not found",
        sft: f"decontaminate_against[1]: file {sft} has purpose 'sft'; only files of purpose "
        "'eval' hold eval questions",
    }
    for bad, message in cases.items():
        response = client.post(
            "/v1/datasets",
            json={
                "name": "refused",
                "batch_ids": [batch_id],
                "decontaminate_against": [good, bad],
                "decontaminate": decontaminate,
            },
        )
        assert response.status_code == 422, response.text
        assert response.json()["detail"] == message
    assert client.get("/v1/datasets").json()["data"] == []
    with session_factory() as session:
        assert session.scalars(select(Dataset)).all() == []


def test_decontaminate_needs_eval_files_and_a_dataset_left(
    client: TestClient,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    batch_id = training_batch(session_factory)
    response = client.post(
        "/v1/datasets", json={"name": "x", "batch_ids": [batch_id], "decontaminate": True}
    )
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "decontaminate: needs decontaminate_against to name at least one eval file"
    )
    everything = eval_file(client, TRAINING_QUESTIONS)
    response = client.post(
        "/v1/datasets",
        json={
            "name": "x",
            "batch_ids": [batch_id],
            "decontaminate_against": [everything],
            "decontaminate": True,
        },
    )
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "decontaminate: all 5 pairs the selection leaves overlap the eval files; "
        "nothing would be left"
    )
    assert client.get("/v1/datasets").json()["data"] == []


def test_eval_upload_reports_overlap_with_the_projects_datasets(
    client: TestClient,
    other: TestClient,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    before = eval_file(client)
    first = client.get(f"/v1/files/{before}").json()["overlap"]
    assert first == {
        "ngram_size": 13,
        "datasets_checked": 0,
        "pairs_checked": 0,
        "pairs_matching": 0,
        "questions_matching": 0,
    }
    batch_id = training_batch(session_factory)
    for name in ("one", "two"):  # the same pairs in two datasets count once
        client.post("/v1/datasets", json={"name": name, "batch_ids": [batch_id]})
    training_batch(session_factory)  # pairs in no dataset are not checked
    response = upload(
        client, "eval", [{"question": q, "reference_answer": "B"} for q in EVAL_QUESTIONS]
    )
    assert response.status_code == 201, response.text
    overlap = response.json()["overlap"]
    assert overlap == {
        "ngram_size": 13,
        "datasets_checked": 2,
        "pairs_checked": 5,
        "pairs_matching": 2,
        "questions_matching": 2,
    }
    assert client.get(f"/v1/files/{response.json()['id']}").json()["overlap"] == overlap
    # Another project's datasets are not this project's business, nor a non-eval file's.
    assert other.get("/v1/files").json()["data"] == []
    theirs = upload(other, "eval", [{"question": EVAL_QUESTIONS[0], "reference_answer": "B"}])
    assert theirs.json()["overlap"]["pairs_checked"] == 0
    sft = upload(client, "sft", [{"prompt": EVAL_QUESTIONS[0], "completion": "a"}]).json()
    assert sft["overlap"] is None


def test_a_large_eval_set_checked_in_parts_finds_the_same_pairs(
    client: TestClient,
    session_factory,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.services import decontamination

    batch_id = training_batch(session_factory)
    file_id = eval_file(client)
    whole = client.post(
        "/v1/datasets",
        json={"name": "whole", "batch_ids": [batch_id], "decontaminate_against": [file_id]},
    ).json()["contamination"]
    monkeypatch.setattr(decontamination, "MAX_INDEX_NGRAMS", 1)  # one question per part
    monkeypatch.setattr(decontamination, "PAGE_SIZE", 2)
    parts = client.post(
        "/v1/datasets",
        json={"name": "parts", "batch_ids": [batch_id], "decontaminate_against": [file_id]},
    ).json()["contamination"]
    assert parts == whole


def test_dashboard_datasets_page_shows_the_eval_overlap(
    client: TestClient,
    settings: Settings,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    batch_id = training_batch(session_factory)
    file_id = eval_file(client)
    for name, extra in (("plain", {}), ("clean", {"decontaminate_against": [file_id]})):
        made = client.post("/v1/datasets", json={"name": name, "batch_ids": [batch_id], **extra})
        assert made.status_code == 201, made.text
    with TestClient(create_app(settings)) as browser:
        assert sign_in_client(browser, api_key(session_factory)).status_code == 303
        page = browser.get("/dashboard/datasets")
    assert page.status_code == 200
    cells = re.findall(r'<td data-field="contamination">(.*?)</td>', page.text)
    assert len(cells) == 2
    assert f'<span title="{file_id}">2 matched, 0 dropped</span>' == cells[0]  # newest first
    assert cells[1] == "—"
