"""NUL characters, NaN and Infinity anywhere a tenant sends text or free-form JSON: a 422 that
names the field and the problem, never a 500, and nothing stored (real Postgres and Redis)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from redis import Redis

from app.kernel.config import Settings
from app.main import create_app
from tests.api.test_training_jobs import HUB_MODEL
from tests.conftest import api_key, bearer

NUL = "must not contain NUL (\\u0000) characters"
NAN = "NaN is not a JSON number; send a finite number, null or a text"
INFINITY = "Infinity is not a JSON number; send a finite number, null or a text"
PROMPT = {"question": "What is 2+2?", "reference_answer": "B"}
NAN_VALUE, INF = float("nan"), float("inf")


@pytest.fixture
def api(settings: Settings, redis: Redis, session_factory) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """The API with a server error answered as a 500, as a real client would see it."""
    app = create_app(settings)
    headers = bearer(api_key(session_factory))
    with TestClient(app, headers=headers, raise_server_exceptions=False) as client:
        yield client


def lenient_json(value: Any) -> str:
    """JSON as Python's json writes it by default: NaN and Infinity as bare words, NUL as
    \\u0000 (httpx's `json=` refuses NaN)."""
    return json.dumps(value, allow_nan=True)


def post_json(api: TestClient, path: str, body: Any) -> tuple[int, str]:
    response = api.post(
        path, content=lenient_json(body), headers={"content-type": "application/json"}
    )
    return response.status_code, response.json().get("detail", "")


def prompt(**fields: Any) -> dict[str, Any]:
    return {**PROMPT, **fields}


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            {"prompts": [prompt(metadata={"a": "x\x00y"})]},
            f"prompts[0].metadata: Value error, at ['a']: {NUL}",
        ),
        (
            {"prompts": [prompt(metadata={"a\x00": 1})]},
            f"prompts[0].metadata: Value error, key 'a\\x00' {NUL}",
        ),
        (
            {"prompts": [prompt(), prompt(metadata={"s": [1, {"t": NAN_VALUE}]})]},
            f"prompts[1].metadata: Value error, at ['s'][1]['t']: {NAN}",
        ),
        (
            {"prompts": [prompt(metadata={"score": -INF})]},
            f"prompts[0].metadata: Value error, at ['score']: -{INFINITY}",
        ),
        (
            {"metadata": {"run": [INF]}, "prompts": [prompt()]},
            f"metadata: Value error, at ['run'][0]: {INFINITY}",
        ),
        (
            {"prompts": [prompt(answers=["4\x00"])]},
            f"prompts[0].answers[0].text: Value error, {NUL}",
        ),
        ({"prompts": [prompt(id="q\x00")]}, f"prompts[0].id: Value error, {NUL}"),
        (
            {"policy": {"model": "m\x00"}, "prompts": [prompt()]},
            f"policy.model: Value error, {NUL}",
        ),
        (
            {"policy": {"temperature": NAN_VALUE}, "prompts": [prompt()]},
            "policy.temperature: Input should be a finite number",
        ),
    ],
    ids=[
        "nul-in-value",
        "nul-in-key",
        "nan-deep",
        "minus-infinity",
        "batch-metadata",
        "given-answer",
        "prompt-id",
        "model-name",
        "option-nan",
    ],
)
def test_unstorable_values_in_a_json_batch_are_422_naming_the_place(
    api: TestClient, body: dict[str, Any], detail: str
) -> None:
    assert post_json(api, "/v1/batches", body) == (422, detail)
    assert api.get("/v1/batches").json()["data"] == []


def jsonl(*lines: Any) -> bytes:
    return "".join(lenient_json(line) + "\n" for line in lines).encode()


def test_unstorable_values_in_a_jsonl_upload_are_422_naming_the_line(api: TestClient) -> None:
    upload = jsonl(prompt(), prompt(metadata={"a": {"b": NAN_VALUE}}))
    response = api.post("/v1/batches", files={"file": ("p.jsonl", upload)})
    assert response.status_code == 422
    assert response.json()["detail"] == f"file line 2: metadata: Value error, at ['a']['b']: {NAN}"

    upload = jsonl(prompt(metadata={"source": ["x\x00"]}))
    response = api.post("/v1/batches", files={"file": ("p.jsonl", upload)})
    assert response.json()["detail"] == (
        f"file line 1: metadata: Value error, at ['source'][0]: {NUL}"
    )

    response = api.post(
        "/v1/batches",
        files={"file": ("p.jsonl", jsonl(prompt()))},
        data={"options": lenient_json({"metadata": {"seed": INF}})},
    )
    assert response.status_code == 422
    assert response.json()["detail"] == f"options.metadata: Value error, at ['seed']: {INFINITY}"

    deep = "[" * 5000 + "]" * 5000
    line = lenient_json(prompt(metadata={"a": "DEEP"})).replace('"DEEP"', deep)
    response = api.post("/v1/batches", files={"file": ("p.jsonl", line.encode())})
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "file line 1: nested too deeply (arrays and objects within each other)"
    )
    assert api.get("/v1/batches").json()["data"] == []


@pytest.mark.parametrize(
    ("line", "detail"),
    [
        (
            {"text": "cash flow", "source": NAN_VALUE},
            f"file line 1: Value error, at ['source']: {NAN}",
        ),
        ({"text": "cash\x00flow"}, f"file line 1: Value error, at ['text']: {NUL}"),
        (
            {"text": "ok", "tags": {"\x00": 1}},
            f"file line 1: Value error, at ['tags']: key '\\x00' {NUL}",
        ),
    ],
    ids=["nan", "nul", "nul-key"],
)
def test_a_training_file_line_with_nan_or_nul_is_refused_and_not_kept(
    api: TestClient, line: dict[str, Any], detail: str
) -> None:
    response = api.post(
        "/v1/files", files={"file": ("cpt.jsonl", jsonl(line))}, data={"purpose": "cpt"}
    )
    assert (response.status_code, response.json()["detail"]) == (422, detail)
    assert api.get("/v1/files").json()["data"] == []


def test_training_job_and_dataset_fields_with_nul_or_infinity_are_named(api: TestClient) -> None:
    job = {"method": "cpt", "base_model": HUB_MODEL, "data": {"files": ["file_x"]}}
    cases = [
        ({**job, "base_model": "m\x00"}, f"base_model: Value error, {NUL}"),
        ({**job, "data": {"files": ["f\x00"]}}, f"data.files: Value error, at [0]: {NUL}"),
        (
            {**job, "hyperparameters": {"learning_rate": INF}},
            "hyperparameters.learning_rate: Input should be a finite number",
        ),
    ]
    for body, detail in cases:
        assert post_json(api, "/v1/training-jobs", body) == (422, detail)
    assert post_json(api, "/v1/datasets", {"name": "d", "batch_ids": ["b\x00"]}) == (
        422,
        f"batch_ids: Value error, at [0]: {NUL}",
    )
    assert api.get("/v1/training-jobs").json()["data"] == []


def test_finite_numbers_and_plain_text_in_metadata_are_kept_as_sent(api: TestClient) -> None:
    metadata = {"score": 1e308, "tiny": -5e-324, "text": "é ✓ \u2028", "nested": [[{"n": None}]]}
    body = {"metadata": metadata, "prompts": [prompt()]}
    response = api.post("/v1/batches", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["metadata"] == metadata
