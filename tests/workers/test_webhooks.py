"""Sending webhooks to a real HTTP server on 127.0.0.1: Standard Webhooks signatures, retries,
delivery after the sender is SIGKILLed mid-send, and an event for every transition."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from redis import Redis
from sqlalchemy import select, update

from app.kernel import webhook_urls
from app.kernel.config import Settings
from app.kernel.models import Chunk, Evaluation, WebhookAttempt, WebhookDelivery
from app.kernel.models.statuses import RunStatus
from app.kernel.process import settings_environment
from app.kernel.webhooks import WEBHOOK_EVENTS
from app.launch import webhook_sender_process
from app.main import create_app
from tests.api.test_evaluations import evaluate, serve_policy
from tests.api.test_training_jobs import create_cpt
from tests.conftest import api_key, bearer
from tests.webhook_receiver import Receiver, verify, webhook_receiver
from tests.workers.test_pipeline import CANNED_OPTIONS, PROMPTS, canned, serve_canned, submit  # noqa: F401
from training.job_store import claim_queued_job, finish_running_job
from workers.chunk_store import settle_idle_batch
from workers.webhooks import pinned, run_webhook_sender


@pytest.fixture
def sender_settings(settings: Settings) -> Settings:
    """A sender that may reach the receiver on 127.0.0.1 and retries quickly."""
    return settings.model_copy(
        update={
            "webhooks_allow_private_urls": True,
            "webhook_retry_delays_s": [0.2, 0.2],
            "webhook_timeout_s": 2.0,
            "webhook_poll_interval_s": 0.1,
        }
    )


@pytest.fixture
def client(sender_settings: Settings, redis: Redis, session_factory) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """The API of an operator who allows private webhook URLs."""
    with TestClient(
        create_app(sender_settings), headers=bearer(api_key(session_factory))
    ) as test_client:
        yield test_client


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as running:
        yield running


def subscribe(client: TestClient, url: str, events: list[str] | None = None) -> dict[str, Any]:
    response = client.post("/v1/webhooks", json={"url": url, "events": events or WEBHOOK_EVENTS})
    assert response.status_code == 201, response.text
    return dict(response.json())


def cancelled_batch(client: TestClient) -> str:
    """A batch cancelled before any worker took it: its status changes in the API's request."""
    batch_id = submit(client, PROMPTS[:2], judge={"engine": "rule"})
    assert client.post(f"/v1/batches/{batch_id}/cancel").json()["status"] == "cancelled"
    return batch_id


def deliveries(client: TestClient, webhook_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/webhooks/{webhook_id}/deliveries")
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def test_a_delivery_is_signed_per_standard_webhooks(
    client: TestClient, receiver: Receiver, sender_settings: Settings
) -> None:
    webhook = subscribe(client, receiver.url)
    batch_id = cancelled_batch(client)
    assert run_webhook_sender(sender_settings, once=True) == 1

    (received,) = receiver.wait_for(1)
    verify(webhook["secret"], received)
    body = json.loads(received.body)
    assert body["type"] == "batch.cancelled"
    assert body["data"] == {
        "id": batch_id,
        "object": "batch",
        "status": "cancelled",
        "project": "test",
        "error": None,
    }
    assert body["timestamp"].endswith("Z")
    assert received.headers["content-type"] == "application/json"
    (delivery,) = deliveries(client, webhook["id"])
    assert delivery["id"] == received.headers["webhook-id"] and delivery["id"].startswith("msg_")
    assert delivery["status"] == "delivered" and delivery["payload"] == body
    assert [attempt["status_code"] for attempt in delivery["attempts"]] == [204]
    assert delivery["attempts"][0]["error"] is None
    assert delivery["next_attempt_at"] is None and delivery["finished_at"] is not None


def test_a_wrong_secret_does_not_verify(
    client: TestClient, receiver: Receiver, sender_settings: Settings
) -> None:
    subscribe(client, receiver.url)
    other = subscribe(client, receiver.url, ["training_job.failed"])
    cancelled_batch(client)
    run_webhook_sender(sender_settings, once=True)
    (received,) = receiver.wait_for(1)
    with pytest.raises(AssertionError):
        verify(other["secret"], received)


def test_a_delivery_answered_500_is_retried_with_the_same_id(
    client: TestClient, receiver: Receiver, sender_settings: Settings
) -> None:
    webhook = subscribe(client, receiver.url)
    receiver.answers = [500]
    cancelled_batch(client)
    run_webhook_sender(sender_settings, once=True)
    (pending,) = deliveries(client, webhook["id"])
    assert pending["status"] == "pending" and pending["next_attempt_at"] is not None
    assert [(a["status_code"], a["error"]) for a in pending["attempts"]] == [(500, "HTTP 500")]

    time.sleep(0.3)  # the first retry delay
    run_webhook_sender(sender_settings, once=True)
    first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == pending["id"]
    assert first.body == second.body
    verify(webhook["secret"], first)
    verify(webhook["secret"], second)
    (delivered,) = deliveries(client, webhook["id"])
    assert delivered["status"] == "delivered"
    assert [a["status_code"] for a in delivered["attempts"]] == [500, 204]
    assert all(a["duration_ms"] >= 0 for a in delivered["attempts"])


def test_a_delivery_fails_once_its_retries_are_spent(
    client: TestClient, receiver: Receiver, sender_settings: Settings
) -> None:
    webhook = subscribe(client, receiver.url)
    receiver.answers = [500, 503, 500, 204]
    cancelled_batch(client)
    for _ in range(3):
        run_webhook_sender(sender_settings, once=True)
        time.sleep(0.3)
    (failed,) = deliveries(client, webhook["id"])
    assert failed["status"] == "failed" and failed["next_attempt_at"] is None
    assert [a["status_code"] for a in failed["attempts"]] == [500, 503, 500]
    assert run_webhook_sender(sender_settings, once=True) == 0
    assert len(receiver.requests) == 3


def test_a_receiver_that_does_not_answer_in_time_is_logged_and_retried(
    client: TestClient, receiver: Receiver, sender_settings: Settings
) -> None:
    webhook = subscribe(client, receiver.url)
    receiver.hold = threading.Event()  # held past WEBHOOK_TIMEOUT_S (2 s here)
    cancelled_batch(client)
    run_webhook_sender(sender_settings, once=True)
    (pending,) = deliveries(client, webhook["id"])
    (attempt,) = pending["attempts"]
    assert pending["status"] == "pending" and attempt["status_code"] is None
    assert attempt["error"].startswith("ReadTimeout"), attempt
    assert 2000 <= attempt["duration_ms"] < 10_000


def test_an_address_turned_private_is_refused_at_send_time(
    client: TestClient, receiver: Receiver, sender_settings: Settings
) -> None:
    webhook = subscribe(client, receiver.url)
    cancelled_batch(client)
    strict = sender_settings.model_copy(update={"webhooks_allow_private_urls": False})
    run_webhook_sender(strict, once=True)
    assert receiver.requests == []
    (pending,) = deliveries(client, webhook["id"])
    (attempt,) = pending["attempts"]
    assert attempt["status_code"] is None
    assert attempt["error"].startswith("url: 127.0.0.1 resolves to 127.0.0.1"), attempt


def test_a_checked_name_is_sent_to_the_address_it_was_checked_at(
    client: TestClient,
    receiver: Receiver,
    sender_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`hooks.example` resolves nowhere here (no DNS): a delivery that arrives went to the
    address the check returned, the name kept in Host."""
    port = httpx.URL(receiver.url).port
    webhook = subscribe(client, f"http://hooks.example:{port}/hooks")
    cancelled_batch(client)
    monkeypatch.setattr(webhook_urls, "resolve", lambda host, port: [ip_address("127.0.0.1")])
    monkeypatch.setattr(webhook_urls, "is_public", lambda address: True)
    strict = sender_settings.model_copy(update={"webhooks_allow_private_urls": False})
    run_webhook_sender(strict, once=True)
    (received,) = receiver.wait_for(1)
    assert {name.lower(): value for name, value in received.headers.items()}["host"] == (
        f"hooks.example:{port}"
    )
    verify(webhook["secret"], received)


def test_a_pinned_https_request_keeps_the_name_for_tls() -> None:
    url, headers, extensions = pinned(
        "https://hooks.example.com:8443/in?x=1", [ip_address("2606:2800:220:1::1")]
    )
    assert str(url) == "https://[2606:2800:220:1::1]:8443/in?x=1"
    assert headers == {"host": "hooks.example.com:8443"}
    assert extensions == {"sni_hostname": "hooks.example.com"}
    assert pinned("http://127.0.0.1:9/in", []) == (httpx.URL("http://127.0.0.1:9/in"), {}, {})


def test_the_sender_killed_mid_send_delivers_once_restarted(
    client: TestClient, receiver: Receiver, sender_settings: Settings, session_factory
) -> None:  # type: ignore[no-untyped-def]
    webhook = subscribe(client, receiver.url)
    cancelled_batch(client)  # the status change: its delivery is in the outbox, committed
    receiver.hold = hold = threading.Event()
    environment = {**os.environ, **settings_environment(sender_settings)}
    command = [sys.executable, "-m", "app.cli", "webhooks"]
    sender = subprocess.Popen(command, env=environment)
    try:
        receiver.wait_for(1)  # the POST is on the wire, its answer held back
        sender.send_signal(signal.SIGKILL)
        sender.wait(timeout=10)
    finally:
        sender.kill()
    (cut_off,) = deliveries(client, webhook["id"])
    assert cut_off["status"] == "pending" and cut_off["attempts"] == []

    hold.set()
    restarted = subprocess.Popen(command, env=environment)
    try:
        # Taken again once the dead sender's claim (timeout + 5 s) runs out.
        first, second = receiver.wait_for(2, timeout_s=60)
        deadline = time.monotonic() + 30
        while deliveries(client, webhook["id"])[0]["status"] != "delivered":
            assert time.monotonic() < deadline, deliveries(client, webhook["id"])
            time.sleep(0.2)
    finally:
        restarted.send_signal(signal.SIGKILL)
        restarted.wait(timeout=10)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == cut_off["id"]
    verify(webhook["secret"], second)
    assert json.loads(second.body)["type"] == "batch.cancelled"


def test_findap_up_runs_a_sender_beside_it(
    client: TestClient, receiver: Receiver, sender_settings: Settings
) -> None:
    webhook = subscribe(client, receiver.url)
    with webhook_sender_process(sender_settings):
        cancelled_batch(client)
        (received,) = receiver.wait_for(1, timeout_s=60)
    verify(webhook["secret"], received)


def fail_and_settle(session_factory, batch_id: str) -> None:  # type: ignore[no-untyped-def]
    """Every chunk of the batch failed (as a worker marks them); the worker settles it."""
    with session_factory.begin() as session:
        session.execute(
            update(Chunk)
            .where(Chunk.batch_id == batch_id)
            .values(status=RunStatus.FAILED, error="engine broke")
        )
        assert settle_idle_batch(session, batch_id)


def finish_training(session_factory, job_id: str, status: RunStatus) -> None:  # type: ignore[no-untyped-def]
    """As a train worker: claim the job, then finish it with this status."""
    with session_factory.begin() as session:
        assert claim_queued_job(session, job_id, worker_name="tests", output_dir="/tmp/x")
    with session_factory.begin() as session:
        error = None if status == RunStatus.SUCCEEDED else "out of memory"
        assert finish_running_job(
            session, job_id, status, error=error, result=None, model_path=None
        )


@pytest.mark.usefixtures("canned")
def test_each_event_is_written_by_its_transition(
    client: TestClient, settings: Settings, session_factory
) -> None:  # type: ignore[no-untyped-def]
    webhook = subscribe(client, "http://127.0.0.1:9/hooks")
    narrow = subscribe(client, "http://127.0.0.1:9/other", ["training_job.failed"])
    expected: list[tuple[str, str]] = []

    completed = submit(client, PROMPTS[:2], **CANNED_OPTIONS)
    serve_canned(settings)
    expected.append(("batch.completed", completed))
    failed = submit(client, PROMPTS[:2], **CANNED_OPTIONS)
    fail_and_settle(session_factory, failed)
    expected.append(("batch.failed", failed))
    expected.append(("batch.cancelled", cancelled_batch(client)))

    evaluation = evaluate(client, prompts=PROMPTS[:2])
    serve_policy(settings)
    expected.append(("evaluation.completed", evaluation["id"]))
    broken = evaluate(client, prompts=PROMPTS[:2])
    with session_factory() as session:
        broken_batch = session.scalar(
            select(Evaluation.batch_id).where(Evaluation.id == broken["id"])
        )
    fail_and_settle(session_factory, broken_batch)
    expected.append(("evaluation.failed", broken["id"]))

    for status in (RunStatus.SUCCEEDED, RunStatus.FAILED):
        job = create_cpt(client)
        finish_training(session_factory, job["id"], status)
        expected.append((f"training_job.{status}", job["id"]))
    job = create_cpt(client)
    assert client.post(f"/v1/training-jobs/{job['id']}/cancel").json()["status"] == "cancelled"
    expected.append(("training_job.cancelled", job["id"]))

    sent = [
        (row["event_type"], row["payload"]["data"]["id"])
        for row in reversed(deliveries(client, webhook["id"]))
    ]
    assert sent == expected
    assert {event for event, _ in sent} == set(WEBHOOK_EVENTS)
    for row in deliveries(client, webhook["id"]):
        data = row["payload"]["data"]
        assert row["payload"]["type"] == row["event_type"]
        assert f"{data['object']}.{data['status']}" == row["event_type"]
        assert data["project"] == "test"
    narrow_sent = [row["event_type"] for row in deliveries(client, narrow["id"])]
    assert narrow_sent == ["training_job.failed"]


def test_no_outbox_row_without_an_endpoint_of_the_project_subscribed(
    client: TestClient, session_factory
) -> None:  # type: ignore[no-untyped-def]
    subscribe(client, "http://127.0.0.1:9/hooks", ["batch.completed"])
    other = bearer(api_key(session_factory, project="other"))
    response = client.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/other", "events": ["batch.cancelled"]},
        headers=other,
    )
    assert response.status_code == 201, response.text
    cancelled_batch(client)
    with session_factory() as session:
        assert session.scalars(select(WebhookDelivery)).all() == []


def test_the_sender_drops_deliveries_older_than_the_log_keeps_and_never_pending_ones(
    client: TestClient, receiver: Receiver, sender_settings: Settings, session_factory
) -> None:  # type: ignore[no-untyped-def]
    webhook = subscribe(client, receiver.url)
    for _ in range(3):
        cancelled_batch(client)
    assert run_webhook_sender(sender_settings, once=True) == 3
    old, recent, waiting = (row["id"] for row in deliveries(client, webhook["id"]))
    long_ago = datetime.now(UTC) - timedelta(days=31)
    with session_factory.begin() as session:
        session.execute(
            update(WebhookDelivery).where(WebhookDelivery.id == old).values(finished_at=long_ago)
        )
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == waiting)
            .values(status="pending", finished_at=None, created_at=long_ago, next_attempt_at=None)
        )
    # The hourly pass comes first in a sender's loop: one pass drops the old delivery.
    run_webhook_sender(sender_settings.model_copy(update={"webhook_log_days": 30}), once=True)

    with session_factory() as session:
        kept = set(session.scalars(select(WebhookDelivery.id)))
        attempts = session.scalars(select(WebhookAttempt.delivery_id)).all()
    assert kept == {recent, waiting}
    assert old not in attempts and recent in attempts
