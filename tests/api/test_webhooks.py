"""/v1/webhooks on real Postgres: endpoints, their secrets (shown once), refused addresses,
projects kept apart, and the paged delivery log."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from sqlalchemy import func, select

from app.kernel.config import Settings
from app.kernel.models import WebhookDelivery, WebhookEndpoint
from app.main import create_app
from tests.conftest import api_key, bearer

EVENTS = ["batch.completed", "batch.failed"]
PUBLIC_URL = "https://93.184.215.14/hooks"
"""A public address written as an IP: no DNS lookup, which these tests cannot make."""


@pytest.fixture
def private_ok(settings: Settings, redis: Redis, session_factory) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """The API where the operator allows private webhook URLs."""
    app = create_app(settings.model_copy(update={"webhooks_allow_private_urls": True}))
    with TestClient(app, headers=bearer(api_key(session_factory))) as client:
        yield client


def endpoints(session_factory) -> int:  # type: ignore[no-untyped-def]
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(WebhookEndpoint)) or 0


def test_the_secret_is_shown_once(client: TestClient) -> None:
    response = client.post("/v1/webhooks", json={"url": PUBLIC_URL, "events": EVENTS})
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["id"].startswith("wh_") and created["object"] == "webhook"
    assert created["url"] == PUBLIC_URL and created["events"] == EVENTS
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40

    shown = client.get(f"/v1/webhooks/{created['id']}")
    assert shown.status_code == 200
    assert "secret" not in shown.json() and created["secret"] not in shown.text
    listed = client.get("/v1/webhooks").text
    assert created["id"] in listed and created["secret"] not in listed


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hooks",
        "http://localhost/hooks",
        "http://10.1.2.3/hooks",
        "http://192.168.0.7/hooks",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hooks",
        "http://[::ffff:127.0.0.1]/hooks",
        "http://0.0.0.0/hooks",
    ],
)
def test_private_addresses_are_refused_naming_url(
    client: TestClient, session_factory, url: str
) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/v1/webhooks", json={"url": url, "events": EVENTS})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith("url: ") and "WEBHOOKS_ALLOW_PRIVATE_URLS" in detail, detail
    assert endpoints(session_factory) == 0


def test_the_operator_may_allow_private_addresses(private_ok: TestClient) -> None:
    response = private_ok.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/hooks", "events": EVENTS}
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"url": "ftp://93.184.215.14/x", "events": EVENTS}, "url: must be an http or https"),
        ({"url": "https:///x", "events": EVENTS}, "url: names no host"),
        ({"url": PUBLIC_URL, "events": []}, "events"),
        ({"url": PUBLIC_URL, "events": ["batch.finished"]}, "events"),
        ({"url": PUBLIC_URL}, "events"),
        ({"url": PUBLIC_URL, "events": EVENTS, "secret": "mine"}, "secret"),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    client: TestClient, session_factory, body: dict, message: str
) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/v1/webhooks", json=body)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"], response.text
    assert endpoints(session_factory) == 0


def test_another_projects_webhook_is_not_found(client: TestClient, session_factory) -> None:  # type: ignore[no-untyped-def]
    webhook = client.post("/v1/webhooks", json={"url": PUBLIC_URL, "events": EVENTS}).json()
    other = bearer(api_key(session_factory, project="other"))
    for path in (f"/v1/webhooks/{webhook['id']}", f"/v1/webhooks/{webhook['id']}/deliveries"):
        response = client.get(path, headers=other)
        assert response.status_code == 404, response.text
        assert response.json()["detail"] == f"webhook {webhook['id']!r} not found"
    assert client.delete(f"/v1/webhooks/{webhook['id']}", headers=other).status_code == 404
    assert client.get("/v1/webhooks", headers=other).json()["data"] == []
    assert client.get(f"/v1/webhooks/{webhook['id']}").status_code == 200


def test_delete_removes_the_endpoint_and_its_log(client: TestClient, session_factory) -> None:  # type: ignore[no-untyped-def]
    webhook = client.post("/v1/webhooks", json={"url": PUBLIC_URL, "events": EVENTS}).json()
    add_deliveries(session_factory, webhook["id"], 1)
    response = client.delete(f"/v1/webhooks/{webhook['id']}")
    assert response.status_code == 200
    assert response.json() == {"id": webhook["id"], "object": "webhook", "deleted": True}
    assert client.get(f"/v1/webhooks/{webhook['id']}").status_code == 404
    assert client.delete(f"/v1/webhooks/{webhook['id']}").status_code == 404
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0


def add_deliveries(session_factory, endpoint_id: str, count: int) -> None:  # type: ignore[no-untyped-def]
    with session_factory.begin() as session:
        for index in range(count):
            body = {"type": "batch.completed", "timestamp": "t", "data": {"id": f"b{index}"}}
            session.add(
                WebhookDelivery(
                    id=f"msg_{index:04d}",
                    endpoint_id=endpoint_id,
                    event_type="batch.completed",
                    body=json.dumps(body),
                )
            )
            session.flush()


def test_the_delivery_log_is_paged_newest_first(client: TestClient, session_factory) -> None:  # type: ignore[no-untyped-def]
    webhook = client.post("/v1/webhooks", json={"url": PUBLIC_URL, "events": EVENTS}).json()
    add_deliveries(session_factory, webhook["id"], 5)
    path = f"/v1/webhooks/{webhook['id']}/deliveries"
    first = client.get(path, params={"limit": 3}).json()
    assert [row["id"] for row in first["data"]] == ["msg_0004", "msg_0003", "msg_0002"]
    assert first["has_more"] is True
    assert (first["first_id"], first["last_id"]) == ("msg_0004", "msg_0002")
    assert first["data"][0]["payload"]["data"] == {"id": "b4"}
    assert first["data"][0]["status"] == "pending" and first["data"][0]["attempts"] == []
    rest = client.get(path, params={"limit": 3, "after": first["last_id"]}).json()
    assert [row["id"] for row in rest["data"]] == ["msg_0001", "msg_0000"]
    assert rest["has_more"] is False
    assert client.get(path, params={"after": "msg_nope"}).status_code == 404
    assert client.get(path, params={"limit": 0}).status_code == 422


def test_a_project_has_at_most_max_webhooks_per_project(
    settings: Settings, redis: Redis, session_factory
) -> None:  # type: ignore[no-untyped-def]
    app = create_app(settings.model_copy(update={"max_webhooks_per_project": 2}))
    with TestClient(app, headers=bearer(api_key(session_factory))) as client:
        body = {"url": PUBLIC_URL, "events": EVENTS}
        first, _ = (client.post("/v1/webhooks", json=body).json() for _ in range(2))
        refused = client.post("/v1/webhooks", json=body)
        assert refused.status_code == 409
        assert refused.json()["detail"] == (
            "webhooks: this project has 2 endpoints, the most it may have "
            "(MAX_WEBHOOKS_PER_PROJECT=2); delete one first"
        )
        assert endpoints(session_factory) == 2
        other = bearer(api_key(session_factory, project="other"))
        assert client.post("/v1/webhooks", json=body, headers=other).status_code == 201
        client.delete(f"/v1/webhooks/{first['id']}")
        assert client.post("/v1/webhooks", json=body).status_code == 201
