"""API request figures in /metrics: count, latency and status by route template, never by path;
one total over several API processes."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from redis import Redis

from app.kernel.config import Settings
from app.kernel.process import settings_environment
from tests.api.test_upload_streaming import api_process
from tests.conftest import api_key, bearer
from tests.faults.support import wait_for
from tests.test_metrics import METRICS_TOKEN, Samples, parse, value

BATCH = "/v1/batches/{batch_id}"


@pytest.fixture(scope="session")
def settings(settings: Settings) -> Settings:
    """The tests' settings with a METRICS_TOKEN: without one, /metrics is off."""
    return settings.model_copy(update={"metrics_token": SecretStr(METRICS_TOKEN)})


def scrape(client: TestClient | httpx.Client) -> Samples:
    response = client.get("/metrics", headers=bearer(METRICS_TOKEN))
    assert response.status_code == 200, response.text
    return parse(response.text)


def test_requests_are_counted_by_route_template_method_and_status(client: TestClient) -> None:
    assert client.get("/v1/batches").status_code == 200
    for missing in ("batch_0123456789abcdef", "batch_fedcba9876543210"):
        assert client.get(f"/v1/batches/{missing}").status_code == 404
    refused = client.post("/v1/batches", json={"prompts": []})
    assert refused.status_code == 422
    for path in ("/no/such/path/tenant-a", "/v1/nothing-here/42"):
        assert client.get(path).status_code == 404
    assert client.request("BREW", "/v1/batches").status_code == 405

    exposition = client.get("/metrics", headers=bearer(METRICS_TOKEN)).text
    samples = parse(exposition)
    requests = "findap_http_requests_total"
    assert value(samples, requests, method="GET", route="/v1/batches", status="200") == 1
    assert value(samples, requests, method="GET", route=BATCH, status="404") == 2
    assert value(samples, requests, method="POST", route="/v1/batches", status="422") == 1
    assert value(samples, requests, method="GET", route="unmatched", status="404") == 2
    assert value(samples, requests, method="other", route="/v1/batches", status="405") == 1
    for raw in ("batch_0123456789abcdef", "tenant-a", "nothing-here", "BREW"):
        assert raw not in exposition
    routes = {dict(labels).get("route") for name, labels in samples if name == requests}
    assert routes == {"/v1/batches", BATCH, "unmatched"}

    seconds = "findap_http_request_seconds"
    assert value(samples, f"{seconds}_count", method="GET", route=BATCH) == 2
    assert value(samples, f"{seconds}_bucket", method="GET", route=BATCH, le="+Inf") == 2
    assert 0 < value(samples, f"{seconds}_sum", method="GET", route=BATCH) < 10
    assert value(samples, f"{seconds}_count", method="POST", route="/v1/batches") == 1

    # The scrape above is counted once it has answered, under its own route.
    again = scrape(client)
    assert value(again, requests, method="GET", route="/metrics", status="200") == 1
    assert value(again, requests, method="GET", route=BATCH, status="404") == 2


def test_several_api_processes_show_one_total(
    settings: Settings,
    redis: Redis,
    session_factory,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    key = bearer(api_key(session_factory))
    with (
        api_process(settings, tmp_path / "first.log") as first_url,
        httpx.Client(base_url=first_url, headers=key, timeout=30) as first,
    ):
        for _ in range(5):
            assert first.get("/v1/batches").status_code == 200
        with (
            api_process(settings, tmp_path / "second.log") as second_url,
            httpx.Client(base_url=second_url, headers=key, timeout=30) as second,
        ):
            for _ in range(7):
                assert second.get("/v1/batches").status_code == 200
                assert second.get("/v1/batches/batch_none").status_code == 404
        # The second process has stopped: what it had not flushed yet went to Redis as it did.

        def both_counted() -> bool:
            samples = scrape(first)
            listed = value(samples, "findap_http_requests_total", route="/v1/batches")
            return listed == 12

        wait_for(both_counted, timeout_s=10, what="the second process's requests in /metrics")
        samples = scrape(first)
        assert value(samples, "findap_http_requests_total", route=BATCH, status="404") == 7
        assert value(samples, "findap_http_request_seconds_count", route="/v1/batches") == 12


def test_a_child_process_gets_the_secrets_themselves(settings: Settings) -> None:
    environment = settings_environment(settings)
    assert environment["METRICS_TOKEN"] == METRICS_TOKEN
