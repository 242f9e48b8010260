"""Datasets: frozen, versioned selections of pairs, downloaded in three formats."""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
from fastapi.testclient import TestClient
from sqlalchemy import delete, update

from app.kernel.config import Settings
from app.kernel.models import PreferencePair
from tests.workers.test_pipeline import (  # noqa: F401
    CANNED_OPTIONS,
    PROMPTS,
    canned,
    serve_canned,
    submit,
)


def make_batch(client: TestClient, settings: Settings) -> str:
    batch_id = submit(client, PROMPTS, **CANNED_OPTIONS)
    serve_canned(settings)
    return batch_id


def test_dataset_freezes_pairs_by_kind_and_counts_versions(
    client: TestClient,
    settings: Settings,
    canned,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    batch_id = make_batch(client, settings)
    response = client.post("/v1/datasets", json={"name": "fin-dpo", "batch_ids": [batch_id]})
    assert response.status_code == 201, response.text
    first = response.json()
    assert first["version"] == 1
    assert first["counts"] == {"fap": 6, "scp": 6, "total": 12, "filtered_out": 0}

    fap_only = client.post(
        "/v1/datasets", json={"name": "fin-dpo", "batch_ids": [batch_id], "kinds": ["fap"]}
    ).json()
    assert fap_only["version"] == 2
    assert fap_only["counts"] == {"fap": 6, "scp": 0, "total": 6, "filtered_out": 0}

    versions = client.get("/v1/datasets", params={"name": "fin-dpo"}).json()["data"]
    assert [d["version"] for d in versions] == [2, 1]
    assert client.get(f"/v1/datasets/{first['id']}").json()["counts"]["total"] == 12


def test_filters_drop_duplicates_across_batches_and_long_pairs(
    client: TestClient,
    settings: Settings,
    session_factory,  # type: ignore[no-untyped-def]
    canned,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    first, second = make_batch(client, settings), make_batch(client, settings)
    both = {"name": "twice", "batch_ids": [first, second]}
    deduped = client.post("/v1/datasets", json=both).json()
    assert deduped["counts"]["total"] == 12  # the second batch repeats the first exactly
    kept_all = client.post(
        "/v1/datasets", json={**both, "filters": {"drop_duplicates": False}}
    ).json()
    assert kept_all["counts"]["total"] == 24

    with session_factory.begin() as session:
        session.execute(
            update(PreferencePair).where(PreferencePair.kind == "fap").values(token_count=500)
        )
    short = client.post(
        "/v1/datasets", json={"name": "short", "batch_ids": [first], "filters": {"max_tokens": 100}}
    ).json()
    assert short["counts"] == {"fap": 0, "scp": 6, "total": 6, "filtered_out": 6}


def test_dataset_downloads_as_trl_openai_and_parquet_and_never_changes(
    client: TestClient,
    settings: Settings,
    canned,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    batch_id = make_batch(client, settings)
    dataset = client.post("/v1/datasets", json={"name": "dl", "batch_ids": [batch_id]}).json()
    url = f"/v1/datasets/{dataset['id']}/download"

    trl = [json.loads(line) for line in client.get(url).text.splitlines()]
    assert len(trl) == 12
    assert set(trl[0]) >= {"prompt", "chosen", "rejected", "kind", "policy_model"}

    openai = [
        json.loads(line) for line in client.get(url, params={"format": "openai"}).text.splitlines()
    ]
    assert set(openai[0]) == {"input", "preferred_output", "non_preferred_output"}
    assert openai[0]["input"]["messages"] == trl[0]["prompt"]
    assert openai[0]["preferred_output"] == trl[0]["chosen"]

    table = pq.read_table(io.BytesIO(client.get(url, params={"format": "parquet"}).content))
    assert table.num_rows == 12

    make_batch(client, settings)  # more pairs arrive later; the frozen dataset does not move
    assert len(client.get(url).text.splitlines()) == 12


def test_dataset_errors_name_the_field(
    client: TestClient,
    settings: Settings,
    canned,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    missing = client.post("/v1/datasets", json={"name": "x", "batch_ids": ["batch_nope"]})
    assert missing.status_code == 422
    assert missing.json()["detail"] == "batch_ids[0]: batch 'batch_nope' not found"
    misspelt = client.post("/v1/datasets", json={"name": "x", "batch_id": ["b"]})
    assert misspelt.json()["detail"] == (
        "batch_ids: Field required; batch_id: Extra inputs are not permitted "
        "(did you mean 'batch_ids'?)"
    )
    bad_name = client.post("/v1/datasets", json={"name": "a b", "batch_ids": ["b"]})
    assert bad_name.status_code == 422 and bad_name.json()["detail"].startswith("name:")
    bad_kind = client.post("/v1/datasets", json={"name": "x", "batch_ids": ["b"], "kinds": ["x"]})
    assert bad_kind.status_code == 422 and bad_kind.json()["detail"].startswith("kinds.0:")
    assert client.get("/v1/datasets/ds_nope").status_code == 404
    assert client.get("/v1/datasets/ds_nope/download").status_code == 404


def test_a_batch_still_running_is_not_frozen(
    client: TestClient,
    settings: Settings,
    canned,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    done = make_batch(client, settings)
    running = submit(client, PROMPTS[:1], **CANNED_OPTIONS)  # queued, no pairs yet
    response = client.post("/v1/datasets", json={"name": "x", "batch_ids": [done, running]})
    assert response.status_code == 409
    assert response.json()["detail"] == (
        f"batch_ids[1]: batch {running} is still queued: its pairs are not all made yet; "
        "freeze it once it has completed, or cancel it to freeze the pairs it made"
    )
    assert client.get("/v1/datasets").json()["data"] == []


def test_an_empty_selection_names_the_filter_that_emptied_it(
    client: TestClient,
    settings: Settings,
    session_factory,  # type: ignore[no-untyped-def]
    canned,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    batch_id = make_batch(client, settings)
    with session_factory.begin() as session:
        session.execute(update(PreferencePair).values(token_count=500))
        session.execute(delete(PreferencePair).where(PreferencePair.kind == "scp"))
    cases = [
        (
            {"filters": {"max_tokens": 100}},
            "filters.max_tokens: all 6 pairs are longer than 100 tokens (the shortest has 500)",
        ),
        ({"kinds": ["scp"]}, "kinds: the batches have 6 pairs, none of kind scp"),
    ]
    for selection, message in cases:
        response = client.post(
            "/v1/datasets", json={"name": "x", "batch_ids": [batch_id], **selection}
        )
        assert response.status_code == 422, response.text
        assert response.json()["detail"] == message
    with session_factory.begin() as session:
        session.execute(delete(PreferencePair))
    none = client.post("/v1/datasets", json={"name": "x", "batch_ids": [batch_id]})
    assert none.json()["detail"] == (
        "batch_ids: the batches made no pairs (`findap status BATCH` says why in its notes)"
    )
    assert client.get("/v1/datasets", params={"name": "x"}).json()["data"] == []


def test_a_batch_id_where_a_dataset_belongs_says_to_freeze_it_first(
    client: TestClient,
    settings: Settings,
    canned,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    batch_id = make_batch(client, settings)
    hint = (
        f"{batch_id} is a batch; freeze its pairs into a dataset first "
        f"(`findap datasets create --name NAME --batch {batch_id}`, or POST /v1/datasets)"
    )
    for path in (f"/v1/datasets/{batch_id}", f"/v1/datasets/{batch_id}/download"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json()["detail"] == f"dataset {batch_id!r} not found: {hint}"
    job = client.post(
        "/v1/training-jobs",
        json={
            "method": "dpo",
            "base_model": "smollm2-135m-instruct",
            "data": {"datasets": [batch_id]},
        },
    )
    assert job.status_code == 422
    assert job.json()["detail"] == f"data.datasets[0]: dataset {batch_id!r} not found: {hint}"
