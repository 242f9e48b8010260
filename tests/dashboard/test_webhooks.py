"""The webhooks pages: a project's endpoints, and one endpoint's delivery log."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from app.kernel.context import ProcessContext
from tests.conftest import api_key, bearer
from tests.dashboard.conftest import screenshot, sign_in, submit
from tests.live import LiveApi
from workers.webhooks import Claimed, Outcome, record_attempt

PUBLIC_URL = "https://93.184.215.14/hooks"


def test_webhooks_page_shows_each_endpoint_and_its_delivery_log(
    page: Page, dashboard: LiveApi, api: httpx.Client, process: ProcessContext
) -> None:
    created = api.post("/v1/webhooks", json={"url": PUBLIC_URL, "events": ["batch.cancelled"]})
    assert created.status_code == 201, created.text
    webhook = created.json()
    batch_id = submit(api, [{"question": "2+2?", "reference_answer": "4"}])
    assert api.post(f"/v1/batches/{batch_id}/cancel").json()["status"] == "cancelled"
    (delivery,) = api.get(f"/v1/webhooks/{webhook['id']}/deliveries").json()["data"]
    claimed = Claimed(delivery["id"], "{}", 0, PUBLIC_URL, webhook["secret"])
    for outcome in (Outcome(500, "HTTP 500", 40), Outcome(204, None, 12)):
        process.transaction(
            lambda session, outcome=outcome: record_attempt(
                session, claimed, outcome, retry_delays_s=[5.0]
            )
        )

    sign_in(page, dashboard)
    page.get_by_role("link", name="Webhooks").click()
    expect(page.locator("h1")).to_have_text("Webhooks")
    row = page.locator(f'tr[data-webhook-row="{webhook["id"]}"]')
    expect(row.locator('[data-field="url"]')).to_have_text(PUBLIC_URL)
    expect(row.locator('[data-field="events"]')).to_have_text("batch.cancelled")
    assert webhook["secret"] not in page.content()

    row.get_by_role("link", name=webhook["id"]).click()
    expect(page).to_have_url(f"{dashboard.url}/dashboard/webhooks/{webhook['id']}")
    logged = page.locator(f'tr[data-delivery-row="{delivery["id"]}"]')
    expect(logged.locator('[data-field="event"]')).to_have_text("batch.cancelled")
    expect(logged.locator('[data-field="status"]')).to_have_text("delivered")
    attempts = logged.locator("[data-attempt]")
    expect(attempts).to_have_count(2)
    expect(attempts.nth(0)).to_contain_text("HTTP 500")
    expect(attempts.nth(1)).to_contain_text("HTTP 204")
    expect(logged).to_contain_text(batch_id)
    screenshot(page, "webhook")


def test_another_projects_webhook_page_is_not_found(
    page: Page, dashboard: LiveApi, session_factory
) -> None:  # type: ignore[no-untyped-def]
    other = httpx.post(
        f"{dashboard.url}/v1/webhooks",
        json={"url": PUBLIC_URL, "events": ["batch.failed"]},
        headers=bearer(api_key(session_factory, project="other")),
    )
    assert other.status_code == 201, other.text
    webhook_id = other.json()["id"]
    sign_in(page, dashboard)
    response = page.goto(f"{dashboard.url}/dashboard/webhooks/{webhook_id}")
    assert response is not None and response.status == 404
    expect(page.locator("body")).to_contain_text(f"webhook '{webhook_id}' not found")
    page.goto(f"{dashboard.url}/dashboard/webhooks")
    expect(page.locator("tr[data-webhook-row]")).to_have_count(0)
