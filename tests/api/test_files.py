"""Training files: uploaded JSONL checked line by line per purpose, listed, downloaded, deleted."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from app.kernel.config import Settings


def upload(client: TestClient, purpose: str, lines: list[object], name: str = "data.jsonl"):  # type: ignore[no-untyped-def]
    body = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    return client.post(
        "/v1/files",
        files={"file": (name, body.encode(), "application/jsonl")},
        data={"purpose": purpose},
    )


def test_each_purpose_accepts_its_line_format(client: TestClient, settings: Settings) -> None:
    cases = {
        "cpt": [{"text": "Revenue rose 12%."}, {"text": "Margins narrowed.", "source": "10-K"}],
        "sft": [
            {
                "messages": [
                    {"role": "user", "content": "EPS?"},
                    {"role": "assistant", "content": "2.5"},
                ]
            },
            {"prompt": "Define EBITDA.", "completion": "Earnings before interest, ..."},
        ],
        "preference": [
            {"prompt": "Q?", "chosen": "good", "rejected": "bad"},
            {
                "prompt": [{"role": "user", "content": "Q?"}],
                "chosen": [{"role": "assistant", "content": "good"}],
                "rejected": [{"role": "assistant", "content": "bad"}],
            },
        ],
        "eval": [
            {"question": "EPS of 5 on 2 shares?", "reference_answer": "2.5"},
            {
                "id": "q2",
                "question": "A or B?",
                "reference_answer": "B",
                "metadata": {"task": "mc"},
            },
        ],
    }
    for purpose, lines in cases.items():
        response = upload(client, purpose, lines)
        assert response.status_code == 201, response.text
        stored = response.json()
        assert stored["purpose"] == purpose and stored["lines"] == 2
        assert (settings.files_dir / f"{stored['id']}.jsonl").exists()

    listed = client.get("/v1/files", params={"purpose": "sft"}).json()["data"]
    assert [f["purpose"] for f in listed] == ["sft"]
    assert len(client.get("/v1/files").json()["data"]) == 4


def test_a_bad_line_is_named_and_nothing_is_stored(client: TestClient, settings: Settings) -> None:
    before = set(settings.files_dir.glob("*")) if settings.files_dir.exists() else set()
    cases = [
        ("cpt", [{"text": "ok"}, {"txt": "typo"}], "file line 2: text: Field required"),
        ("cpt", [{"text": "ok"}, "{not json"], "file line 2: not valid JSON"),
        (
            "sft",
            [{"messages": [{"role": "user", "content": "only a question"}]}],
            "file line 1: Value error, messages: needs at least one assistant message",
        ),
        ("sft", [{"prompt": "no completion"}], 'file line 1: Value error, expected "messages"'),
        ("preference", [{"prompt": "Q", "chosen": "a"}], "file line 1: rejected: Field required"),
        ("eval", [{"question": "Q?"}], "file line 1: reference_answer: Field required"),
        ("eval", [{"question": "Q?", "reference_answer": ""}], "file line 1: reference_answer:"),
        (
            "eval",
            [{"question": "Q?", "reference_answer": "1", "metadata": {"task": 3}}],
            "file line 1: Value error, metadata.task: must be a string",
        ),
        ("eval", [""], "file: no lines in the upload"),
        ("dpo", [{"text": "x"}], "purpose: must be one of cpt, sft, preference, eval, got 'dpo'"),
        ("cpt", ["", "  "], "file: no lines in the upload"),
    ]
    for purpose, lines, message in cases:
        response = upload(client, purpose, lines)
        assert response.status_code == 422, response.text
        assert response.json()["detail"].startswith(message), response.json()["detail"]
    assert client.get("/v1/files").json()["data"] == []
    after = set(settings.files_dir.glob("*")) if settings.files_dir.exists() else set()
    assert after == before  # no partial file left behind


def test_download_returns_the_lines_and_delete_removes_everything(
    client: TestClient, settings: Settings
) -> None:
    stored = upload(client, "cpt", [{"text": "a"}, "", {"text": "b"}], name="corpus.jsonl").json()
    content = client.get(f"/v1/files/{stored['id']}/content")
    assert content.status_code == 200
    assert [json.loads(line) for line in content.text.splitlines()] == [
        {"text": "a"},
        {"text": "b"},
    ]
    assert client.get(f"/v1/files/{stored['id']}").json()["filename"] == "corpus.jsonl"

    deleted = client.delete(f"/v1/files/{stored['id']}")
    assert deleted.json() == {"id": stored["id"], "object": "file", "deleted": True}
    assert not (settings.files_dir / f"{stored['id']}.jsonl").exists()
    assert client.get(f"/v1/files/{stored['id']}").status_code == 404
    assert client.delete(f"/v1/files/{stored['id']}").status_code == 404
    missing_purpose = client.post("/v1/files", files={"file": ("a.jsonl", b'{"text": "a"}')})
    assert missing_purpose.status_code == 422
    assert missing_purpose.json()["detail"].startswith("purpose: Field required")
