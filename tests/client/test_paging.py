"""The client reads every page of a paged list, against a live server."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from typer.testing import Result

from app.client.connection import Connection
from app.kernel.catalog import configured_models
from app.kernel.config import Settings
from app.kernel.registered_models import REGISTERED_MODELS
from tests.api.test_models import add_trained_model
from tests.api.test_paged_lists import upload_cpt
from tests.live import LiveApi


def test_get_all_follows_last_id_while_more_pages_follow(
    server: LiveApi, client: TestClient
) -> None:
    uploaded = [upload_cpt(client, f"cpt-{n}.jsonl") for n in range(5)]
    with Connection(url=server.url, key=server.key) as connection:
        assert len(connection.get("/v1/files", limit=2)["data"]) == 2
        listed = connection.get_all("/v1/files", limit=2)
        assert [file["id"] for file in listed] == uploaded[::-1]
        assert connection.get_all("/v1/files", purpose="sft") == []


def test_models_lists_more_models_than_one_page_holds(
    findap: Callable[..., Result],
    settings: Settings,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    now = datetime.now(UTC)
    trained = [f"base-dpo-{n:03}" for n in range(120)]  # a page holds 100 by default
    for age, model_id in enumerate(trained):
        add_trained_model(session_factory, model_id, now - timedelta(seconds=age))
    listed = findap("models", "--json")
    assert listed.exit_code == 0, listed.output
    ids = [model["id"] for model in json.loads(listed.stdout)["data"]]
    catalog = [*REGISTERED_MODELS, *configured_models(settings)]
    assert ids == [*catalog, *trained]
    table = findap("models")
    assert trained[-1] in table.stdout
