"""Every answer of a batch as a download, and pairs filtered by kind on the server."""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from app.kernel.config import Settings
from app.services.sample_export import sample_pages, samples_jsonl
from tests.workers.test_pipeline import (  # noqa: F401
    CANNED_OPTIONS,
    PROMPTS,
    canned,
    serve_canned,
    submit,
)

K = CANNED_OPTIONS["policy"]["samples_per_prompt"]  # type: ignore[index]


def finished_batch(client: TestClient, settings: Settings) -> str:
    batch_id = submit(client, PROMPTS, **CANNED_OPTIONS)
    serve_canned(settings)
    assert client.get(f"/v1/batches/{batch_id}").json()["status"] == "completed"
    return batch_id


def test_samples_download_holds_every_answer_with_its_verdicts_in_both_formats(
    client: TestClient,
    settings: Settings,
    canned,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    batch_id = finished_batch(client, settings)
    listed = client.get(f"/v1/batches/{batch_id}/samples", params={"limit": 500}).json()["data"]

    jsonl = client.get(f"/v1/batches/{batch_id}/samples", params={"format": "jsonl"})
    assert jsonl.status_code == 200
    assert jsonl.headers["content-type"] == "application/jsonl"
    assert jsonl.headers["content-disposition"] == (
        f'attachment; filename="{batch_id}-samples.jsonl"'
    )
    rows = [json.loads(line) for line in jsonl.text.splitlines()]
    assert len(rows) == len(PROMPTS) * K
    assert rows == listed  # the same answers as the JSON listing, verdicts and all
    verdicts = [row["fap"]["verdict"] for row in rows]
    assert verdicts.count("correct") == verdicts.count("wrong") == len(PROMPTS)
    wrong = [row for row in rows if row["fap"]["verdict"] == "wrong"]
    assert all(row["scp"]["outcome"] == "parsed" and row["scp"]["wrong_step"] for row in wrong)

    parquet = client.get(f"/v1/batches/{batch_id}/samples", params={"format": "parquet"})
    assert parquet.status_code == 200
    assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.num_rows == len(PROMPTS) * K
    columns = table.to_pylist()
    assert [row["id"] for row in columns] == [row["id"] for row in rows]
    assert [row["fap"]["verdict"] for row in columns] == verdicts
    assert [row["scp"] and row["scp"]["correction"] for row in columns] == [
        row["scp"] and row["scp"]["correction"] for row in rows
    ]
    assert [row["text"] for row in columns] == [row["text"] for row in rows]


def test_samples_download_filters_by_verdict_and_the_listing_stays_json(
    client: TestClient,
    settings: Settings,
    canned,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    batch_id = finished_batch(client, settings)
    wrong = client.get(
        f"/v1/batches/{batch_id}/samples", params={"format": "jsonl", "verdict": "wrong"}
    )
    assert {json.loads(line)["fap"]["verdict"] for line in wrong.text.splitlines()} == {"wrong"}
    assert len(wrong.text.splitlines()) == len(PROMPTS)
    page = client.get(f"/v1/batches/{batch_id}/samples", params={"limit": 3})
    assert page.headers["content-type"] == "application/json"
    assert len(page.json()["data"]) == 3 and page.json()["has_more"] is True
    bad = client.get(f"/v1/batches/{batch_id}/samples", params={"format": "csv"})
    assert bad.status_code == 422
    assert "format" in bad.json()["detail"]


def test_sample_pages_are_read_by_key_each_in_a_session_of_its_own(
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    canned,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    batch_id = finished_batch(client, settings)
    opened: list[Session] = []

    def counting_factory() -> Session:
        session = session_factory()
        opened.append(session)
        return session

    pages = list(sample_pages(counting_factory, batch_id, page_rows=5))  # type: ignore[arg-type]
    assert [len(page) for page in pages] == [5, 5, 2]
    assert len(opened) == 3
    ids = [sample.id for page in pages for sample in page]
    assert ids == sorted(set(ids))
    assert b"".join(samples_jsonl(iter(pages))).count(b"\n") == len(PROMPTS) * K


def test_pairs_download_filters_by_kind_in_every_format(
    client: TestClient,
    settings: Settings,
    canned,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    batch_id = finished_batch(client, settings)
    url = f"/v1/batches/{batch_id}/pairs"
    for kind in ("fap", "scp"):
        lines = client.get(url, params={"format": "jsonl", "kind": kind}).text.splitlines()
        assert len(lines) == len(PROMPTS)
        assert {json.loads(line)["kind"] for line in lines} == {kind}
        parquet = client.get(url, params={"format": "parquet", "kind": kind})
        table = pq.read_table(io.BytesIO(parquet.content))
        assert table.column("kind").to_pylist() == [kind] * len(PROMPTS)
    assert len(client.get(url).text.splitlines()) == 2 * len(PROMPTS)

    unknown = client.get(url, params={"kind": "prm"})
    assert unknown.status_code == 422
    assert "kind" in unknown.json()["detail"]
    with_prm = client.get(url, params={"format": "prm", "kind": "scp"})
    assert with_prm.status_code == 422
    assert with_prm.json()["detail"] == (
        "kind: applies to pairs, not to format=prm (step labels of answers), got 'scp'"
    )
