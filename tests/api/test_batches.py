"""The batches API on a real Postgres and Redis (no model involved)."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from redis import Redis
from rq import Queue

from app.kernel.config import Settings

PROMPTS = [
    {"id": "q1", "question": "What is 2+2?\nA. 3\nB. 4", "reference_answer": "B"},
    {"id": "q2", "question": "What is 3+3?\nA. 6\nB. 7", "reference_answer": "A"},
]


def submit(client: TestClient, **overrides: object) -> dict:
    response = client.post("/v1/batches", json={"prompts": PROMPTS, **overrides})
    assert response.status_code == 201, response.text
    return response.json()


def test_create_batch_stores_prompts_and_queues_one_job_per_chunk(
    client: TestClient, redis: Redis, settings: Settings
) -> None:
    prompts = [
        {"id": f"q{i}", "question": f"Question {i}?", "reference_answer": "A"} for i in range(10)
    ]
    response = client.post(
        "/v1/batches",
        json={
            "prompts": prompts,
            "policy": {
                "model": "smollm2-135m-instruct",
                "samples_per_prompt": 4,
                "temperature": 0.8,
                "max_tokens": 256,
            },
            "judge": {"model": "smollm2-135m-instruct", "max_tokens": 256},
        },
    )
    assert response.status_code == 201, response.text
    batch = response.json()
    assert batch["status"] == "queued"
    assert batch["request_counts"] == {"total": 10, "completed": 0, "failed": 0}
    assert batch["chunk_counts"]["total"] == 3  # chunk_size 4 in the test settings
    assert batch["policy"]["samples_per_prompt"] == 4
    assert batch["judge"]["scp_prompt_version"] == "scp-steps-v1"
    queue = Queue(f"{settings.queue_name}:sample:hf:smollm2-135m-instruct", connection=redis)
    assert queue.count == 3  # one job per chunk, on the policy model's sampling queue


def test_get_batch_returns_the_batch_and_404_for_unknown_ids(client: TestClient) -> None:
    batch = submit(client)
    assert client.get(f"/v1/batches/{batch['id']}").json()["id"] == batch["id"]
    missing = client.get("/v1/batches/batch_nope")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "batch 'batch_nope' not found"


def test_validation_errors_name_the_field(client: TestClient) -> None:
    cases = [
        ({"prompts": []}, "prompts: List should have at least 1 item"),
        ({"prompts": [{"question": ""}]}, "prompts[0].question: String should have at least 1"),
        ({"prompts": [{"question": "x"}]}, "prompts[0].reference_answer: required"),
        (
            {"prompts": PROMPTS, "policy": {"samples_per_prompt": 0}},
            "policy.samples_per_prompt: Input should be greater than or equal to 1",
        ),
        (
            {"prompts": PROMPTS, "policy": {"engine": "tgi"}},
            "policy.engine: Value error, must be one of hf, vllm, openai, got 'tgi'",
        ),
        (
            {"prompts": PROMPTS, "pairing": {"strategy": "best"}},
            "pairing.strategy: Input should be",
        ),
        ({"prompts": PROMPTS, "colour": "red"}, "colour: Extra inputs are not permitted"),
        (
            {"prompts": PROMPTS, "polcy": {"model": "m"}},
            "polcy: Extra inputs are not permitted (did you mean 'policy'?)",
        ),
        (
            {"prompts": PROMPTS, "policy": {"temprature": 0.5}},
            "policy.temprature: Extra inputs are not permitted (did you mean 'temperature'?)",
        ),
        (
            {"prompts": [{**PROMPTS[0], "referance_answer": "B"}]},
            "prompts[0].referance_answer: Extra inputs are not permitted "
            "(did you mean 'reference_answer'?)",
        ),
        (
            {"prompts": [{"question": "a\u0000b", "reference_answer": "A"}]},
            "prompts[0].question: Value error, must not contain NUL",
        ),
        (
            {"prompts": [PROMPTS[0], PROMPTS[0]]},
            "prompts[1].id: duplicate id 'q1' (also prompts[0])",
        ),
    ]
    for body, message in cases:
        response = client.post("/v1/batches", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["detail"].startswith(message), response.json()["detail"]
    assert client.get("/v1/batches").json()["data"] == []


def test_malformed_json_body_is_a_422_not_a_500(client: TestClient) -> None:
    response = client.post(
        "/v1/batches", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert "Invalid JSON" in response.json()["detail"]
    response = client.post("/v1/batches", content=b"hello", headers={"content-type": "text/plain"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("content-type:")


def test_jsonl_upload_creates_a_batch_with_options(client: TestClient) -> None:
    lines = "\n".join(json.dumps(p) for p in PROMPTS) + "\n\n"
    response = client.post(
        "/v1/batches",
        files={"file": ("prompts.jsonl", lines.encode(), "application/jsonl")},
        data={
            "options": json.dumps(
                {"policy": {"samples_per_prompt": 2}, "judge": {"engine": "rule"}}
            )
        },
    )
    assert response.status_code == 201, response.text
    batch = response.json()
    assert batch["request_counts"]["total"] == 2
    assert batch["policy"]["samples_per_prompt"] == 2
    assert batch["judge"]["model"] == "rule"
    assert batch["notes"] == [
        "no worker serves policy hf:smollm2-135m-instruct: "
        "start `findap worker --policy hf:smollm2-135m-instruct`",
        "judge 'rule' checks final answers only: this batch makes FAP pairs, no SCP pairs",
    ]


def test_jsonl_upload_names_the_file_line_once_for_every_problem(client: TestClient) -> None:
    def upload(*lines: str) -> str:
        body = "\n".join(lines).encode()
        response = client.post(
            "/v1/batches", files={"file": ("p.jsonl", body, "application/jsonl")}
        )
        assert response.status_code == 422, response.text
        return str(response.json()["detail"])

    first, second = json.dumps(PROMPTS[0]), json.dumps(PROMPTS[1])
    # Blank lines count: the numbers are the file's, from 1.
    assert upload(first, "", second, "", first) == (
        "file line 5: id: duplicate id 'q1' (also file line 1)"
    )
    assert upload(first, "", '{"question": "Q?"}') == (
        "file line 3: reference_answer: required, the judge compares against it"
    )
    assert upload(first, '{"question": "a",\n') == (
        "file line 2: not valid JSON (Expecting property name enclosed in double quotes at "
        "column 19)"
    )
    assert upload(first, '{"question": "Q?", "referenceanswer": "A"}') == (
        "file line 2: referenceanswer: Extra inputs are not permitted "
        "(did you mean 'reference_answer'?)"
    )
    options = client.post(
        "/v1/batches",
        files={"file": ("p.jsonl", first.encode(), "application/jsonl")},
        data={"options": json.dumps({"judge": {"engin": "rule"}})},
    )
    assert options.json()["detail"] == (
        "options.judge.engin: Extra inputs are not permitted (did you mean 'engine'?)"
    )
    assert client.get("/v1/batches").json()["data"] == []


def test_jsonl_upload_with_a_bad_line_names_it_and_stores_nothing(client: TestClient) -> None:
    lines = [json.dumps(PROMPTS[0]), json.dumps(PROMPTS[1]), '{"question": 5}']
    response = client.post(
        "/v1/batches", files={"file": ("p.jsonl", "\n".join(lines).encode(), "application/jsonl")}
    )
    assert response.status_code == 422
    assert response.json()["detail"] == "file line 3: question: Input should be a valid string"
    broken = client.post(
        "/v1/batches", files={"file": ("p.jsonl", b'{"question": "a"}\n{oops', "application/jsonl")}
    )
    assert broken.status_code == 422
    assert broken.json()["detail"].startswith("file line 2: not valid JSON")
    bad_options = client.post(
        "/v1/batches",
        files={"file": ("p.jsonl", json.dumps(PROMPTS[0]).encode(), "application/jsonl")},
        data={"options": json.dumps({"policy": {"temperature": 9}})},
    )
    assert bad_options.status_code == 422
    assert bad_options.json()["detail"].startswith("options.policy.temperature:")
    assert client.get("/v1/batches").json()["data"] == []


def test_list_batches_pages_newest_first(client: TestClient) -> None:
    ids = [submit(client)["id"] for _ in range(5)]
    first = client.get("/v1/batches", params={"limit": 2}).json()
    assert [b["id"] for b in first["data"]] == ids[::-1][:2]
    assert first["has_more"] is True
    second = client.get("/v1/batches", params={"limit": 2, "after": first["last_id"]}).json()
    third = client.get("/v1/batches", params={"limit": 2, "after": second["last_id"]}).json()
    assert [b["id"] for b in second["data"] + third["data"]] == ids[::-1][2:]
    assert third["has_more"] is False
    assert client.get("/v1/batches", params={"limit": 0}).status_code == 422


def test_cancel_queued_batch_cancels_every_chunk(client: TestClient) -> None:
    batch = submit(client)
    response = client.post(f"/v1/batches/{batch['id']}/cancel")
    assert response.status_code == 200
    cancelled = response.json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancelled_at"] is not None
    assert cancelled["chunk_counts"]["cancelled"] == cancelled["chunk_counts"]["total"]
    again = client.post(f"/v1/batches/{batch['id']}/cancel")
    assert again.status_code == 409
    assert "can no longer be cancelled" in again.json()["detail"]
    assert client.post("/v1/batches/batch_nope/cancel").status_code == 404


def test_samples_and_pairs_of_a_new_batch_are_empty(client: TestClient) -> None:
    batch = submit(client)
    samples = client.get(f"/v1/batches/{batch['id']}/samples").json()
    assert samples["data"] == [] and samples["has_more"] is False
    pairs = client.get(f"/v1/batches/{batch['id']}/pairs")
    assert pairs.status_code == 200 and pairs.content == b""
    assert pairs.headers["X-Findap-Batch-Status"] == "queued"  # an empty file says why
    as_parquet = client.get(f"/v1/batches/{batch['id']}/pairs", params={"format": "parquet"})
    assert as_parquet.headers["X-Findap-Batch-Status"] == "queued"
    assert (
        client.get(f"/v1/batches/{batch['id']}/pairs", params={"format": "csv"}).status_code == 422
    )
    assert client.get("/v1/batches/batch_nope/pairs").status_code == 404
