"""Files, datasets, models, training jobs and training events page like batches do: `limit`
and `after` in, `data`, `first_id`, `last_id` and `has_more` out; another project's id is no
cursor. On a real Postgres and Redis."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from redis import Redis

from app.kernel.config import Settings
from app.kernel.models import TrainingEvent
from app.main import create_app
from tests.api.test_datasets import make_batch
from tests.api.test_models import BASE_MODELS, add_trained_model
from tests.api.test_training_jobs import create_cpt, file_id
from tests.conftest import api_key, bearer
from tests.workers.test_pipeline import canned  # noqa: F401  (a fixture)


def read_pages(client: TestClient, path: str, limit: int, **params: Any) -> list[list[str]]:
    """The ids on each page of a list, following `last_id` while `has_more`; each page's
    paging fields checked against its data."""
    pages: list[list[str]] = []
    after = None
    while True:
        query = {**params, "limit": limit, **({"after": after} if after is not None else {})}
        response = client.get(path, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        ids = [item["id"] for item in page["data"]]
        assert page["object"] == "list"
        assert len(ids) <= limit
        assert page["first_id"] == (ids[0] if ids else None)
        assert page["last_id"] == (ids[-1] if ids else None)
        pages.append(ids)
        if not page["has_more"]:
            return pages
        after = page["last_id"]


def upload_cpt(client: TestClient, name: str) -> str:
    response = client.post(
        "/v1/files",
        files={"file": (name, b'{"text": "Revenue rose."}\n')},
        data={"purpose": "cpt"},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.fixture
def other_project(settings: Settings, redis: Redis, session_factory) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(
        create_app(settings), headers=bearer(api_key(session_factory, project="other"))
    ) as other:
        yield other


def test_files_page_newest_first_and_filter_by_purpose(
    client: TestClient, other_project: TestClient
) -> None:
    uploaded = [upload_cpt(client, f"cpt-{n}.jsonl") for n in range(5)]
    sft = file_id(client, "sft")
    assert read_pages(client, "/v1/files", 2, purpose="cpt") == [
        uploaded[:2:-1],
        uploaded[2:0:-1],
        uploaded[:1],
    ]
    assert sum(read_pages(client, "/v1/files", 4), []) == [sft, *reversed(uploaded)]
    assert len(client.get("/v1/files").json()["data"]) == 6  # default limit: 100

    foreign = other_project.get("/v1/files", params={"after": uploaded[0]})
    assert foreign.status_code == 404
    assert foreign.json()["detail"] == f"file {uploaded[0]!r} not found"
    assert upload_cpt(other_project, "theirs.jsonl") not in sum(
        read_pages(client, "/v1/files", 3), []
    )


def test_datasets_page_newest_first_and_by_name(
    client: TestClient,
    settings: Settings,
    other_project: TestClient,
    canned: None,  # noqa: F811
) -> None:
    batch_id = make_batch(client, settings)
    made = []
    for name in ("a", "b", "a", "a", "b"):
        response = client.post("/v1/datasets", json={"name": name, "batch_ids": [batch_id]})
        assert response.status_code == 201, response.text
        made.append(response.json()["id"])
    assert read_pages(client, "/v1/datasets", 2) == [made[:2:-1], made[2:0:-1], made[:1]]
    assert read_pages(client, "/v1/datasets", 2, name="a") == [[made[3], made[2]], [made[0]]]
    assert other_project.get("/v1/datasets", params={"after": made[0]}).status_code == 404


def test_models_page_through_catalog_then_trained_models(
    settings: Settings,
    redis: Redis,
    session_factory,  # type: ignore[no-untyped-def]
    other_project: TestClient,
) -> None:
    now = datetime.now(UTC)
    trained = [f"qwen-1.5b-dpo-{n}" for n in range(3)]
    for age, model_id in enumerate(trained):
        add_trained_model(session_factory, model_id, now - timedelta(minutes=age))
    app = create_app(settings.model_copy(update={"base_models": BASE_MODELS}))
    with TestClient(app, headers=bearer(api_key(session_factory))) as client:
        catalog = ["smollm2-135m-instruct", *BASE_MODELS]
        everything = [*catalog, *trained]
        for limit in (1, 2, 3, 6, 100):
            pages = read_pages(client, "/v1/models", limit)
            assert sum(pages, []) == everything, limit
            assert len(pages) == -(-len(everything) // limit), limit
        # A cursor in the catalog continues after it; the last catalog entry leads to trained.
        after_catalog = client.get("/v1/models", params={"after": catalog[-1], "limit": 2})
        assert [m["id"] for m in after_catalog.json()["data"]] == trained[:2]
        unknown = client.get("/v1/models", params={"after": "qwen-1.5b-dpo-nope"})
        assert unknown.status_code == 404
    # Another project's trained model is no cursor for this one.
    assert other_project.get("/v1/models", params={"after": trained[0]}).status_code == 404


def test_training_jobs_and_events_carry_first_and_last_ids(
    client: TestClient,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    jobs = [create_cpt(client)["id"] for _ in range(3)]
    assert read_pages(client, "/v1/training-jobs", 2) == [jobs[:0:-1], jobs[:1]]
    with session_factory.begin() as session:
        for step in range(1, 5):
            session.add(TrainingEvent(job_id=jobs[0], kind="metrics", step=step, metrics={}))
    pages = read_pages(client, f"/v1/training-jobs/{jobs[0]}/events", 2)
    events = sum(pages, [])
    assert [len(page) for page in pages] == [2, 2, 1]  # its status event, then four steps
    assert events == sorted(events)  # oldest first


@pytest.mark.parametrize("path", ["/v1/files", "/v1/datasets", "/v1/models"])
@pytest.mark.parametrize(("limit", "problem"), [(0, "greater than or equal to 1"), (1001, "less")])
def test_a_limit_out_of_range_is_a_422_naming_it(
    client: TestClient, path: str, limit: int, problem: str
) -> None:
    response = client.get(path, params={"limit": limit})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("limit: Input should be ")
    assert problem in response.json()["detail"]
