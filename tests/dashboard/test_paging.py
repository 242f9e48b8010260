"""The dashboard's datasets and models pages read their lists a page at a time."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from redis import Redis

from app.dashboard import routes
from app.kernel.catalog import configured_models
from app.kernel.config import Settings
from app.kernel.registered_models import REGISTERED_MODELS
from app.main import create_app
from tests.api.test_models import add_trained_model
from tests.conftest import api_key
from tests.dashboard.forms import sign_in_client


@pytest.fixture
def signed_in(settings: Settings, redis: Redis, session_factory) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(create_app(settings)) as client:
        assert sign_in_client(client, api_key(session_factory)).status_code == 303
        yield client


def test_models_page_links_to_the_next_page(
    signed_in: TestClient,
    settings: Settings,
    session_factory,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(routes, "MODELS_PER_PAGE", 2)
    now = datetime.now(UTC)
    for age, model_id in enumerate(["tuned-a", "tuned-b", "tuned-c"]):
        add_trained_model(session_factory, model_id, now - timedelta(minutes=age))

    def listed(page: str) -> list[str]:
        return re.findall(r'data-model-row="([^"]+)"', page)

    def next_links(page: str) -> list[str]:
        return re.findall(r'href="(/dashboard/models\?after=[^"]+)"', page)

    # Registered and configured models come first, then the trained ones, two to a page.
    expected = [*REGISTERED_MODELS, *configured_models(settings), "tuned-a", "tuned-b", "tuned-c"]
    pages = [signed_in.get("/dashboard/models").text]
    while next_links(pages[-1]):
        (next_link,) = next_links(pages[-1])
        pages.append(signed_in.get(next_link).text)
    assert [listed(page) for page in pages] == [
        expected[start : start + 2] for start in range(0, len(expected), 2)
    ]
    missing = signed_in.get("/dashboard/models", params={"after": "no-such-model"})
    assert missing.status_code == 404
