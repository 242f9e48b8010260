"""The sample viewer of a consensus batch: each rolled-out prefix's success estimate beside the
judge's decision, and where the two disagree."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from app.kernel.config import Settings
from tests.dashboard.conftest import screenshot, sign_in
from tests.live import LiveApi
from tests.workers.test_pipeline import PROMPTS, serve
from tests.workers.test_rollout_pipeline import POLICY, ContinuingPolicy, engines

__all__ = ["engines"]  # the fixture, used by name


def test_prefix_estimates_show_beside_the_judges_first_wrong_step(
    page: Page, dashboard: LiveApi, api: httpx.Client, settings: Settings, engines: ContinuingPolicy
) -> None:
    judge = {"model": "other-step-judge", "scp_method": "consensus"}
    response = api.post(
        "/v1/batches", json={"prompts": PROMPTS[:2], "policy": POLICY, "judge": judge}
    )
    assert response.status_code == 201, response.text
    batch_id = response.json()["id"]
    serve(settings, policy="hf:continuing-policy", judge="hf:other-step-judge")

    sign_in(page, dashboard, f"/dashboard/batches/{batch_id}")
    expect(page.locator('[data-count="rollout-parsed"]')).to_have_text("2")
    expect(page.locator('[data-count="agreement"]')).to_have_text("1 of 2")

    # Case 1: the judge names step 2, the rollouts step 1.
    page.goto(f"{dashboard.url}/dashboard/batches/{batch_id}/prompts/1")
    wrong = page.locator('article[data-verdict="wrong"]')
    rollout = wrong.get_by_test_id("rollout")
    expect(rollout.get_by_test_id("rollout-step")).to_have_text(
        "Step 1 is the first wrong one; the judge disagrees."
    )
    rows = rollout.get_by_test_id("prefix-estimates").locator("tr[data-prefix]")
    expect(rows).to_have_count(2)
    expect(rows.nth(0).locator("[data-estimate]")).to_have_text("4 of 8")
    expect(rows.nth(0).locator("[data-judge]")).to_have_text("right so far")
    expect(rows.nth(1).locator("[data-estimate]")).to_have_text("0 of 8")
    expect(rows.nth(1).locator("[data-judge]")).to_have_text("right so far")
    expect(rollout.get_by_test_id("rollout-correction")).to_have_text("Step 1: 2 + 2 makes 4.")
    screenshot(page, "rollout-estimates")

    page.goto(f"{dashboard.url}/dashboard/batches/{batch_id}/prompts/0")
    expect(
        page.locator('article[data-verdict="wrong"]').get_by_test_id("rollout-step")
    ).to_have_text("Step 1 is the first wrong one; the judge agrees.")
