"""The batch page's calibration panel, and the page of answers where the judge disagrees."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from app.kernel.config import Settings
from tests.dashboard.conftest import screenshot, sign_in
from tests.live import LiveApi
from tests.workers.canned_engines import RIGHT, WRONG
from tests.workers.test_given_answers import judge_only
from tests.workers.test_pipeline import QUESTION

# Right, but said in words the rule verifier cannot read as a letter: it calls it wrong.
IN_WORDS = "Step 1: 2 + 2 makes 4.\nStep 2: That is the second option.\nAnswer: the second one"


def test_calibration_panel_and_the_disagreements(
    page: Page, dashboard: LiveApi, api: httpx.Client, settings: Settings
) -> None:
    answers = [
        {"text": RIGHT, "gold": {"correct": True}},
        {"text": WRONG, "gold": {"correct": False, "first_wrong_step": 1}},
        {"text": IN_WORDS, "gold": {"correct": True}},
    ]
    prompt = {"id": "gold-q", "question": QUESTION, "reference_answer": "B", "answers": answers}
    response = api.post("/v1/batches", json={"prompts": [prompt], "judge": {"engine": "rule"}})
    assert response.status_code == 201, response.text
    batch_id = response.json()["id"]
    judge_only(settings, "rule:rule")

    sign_in(page, dashboard, f"/dashboard/batches/{batch_id}")
    panel = page.get_by_test_id("calibration")
    expect(panel.locator('[data-cal="fap-n"]')).to_have_text("3")
    expect(panel.locator('[data-cal="fap-accuracy"]')).to_have_text("0.67")
    expect(panel.locator('[data-cal="fap-precision"]')).to_have_text("0.50")
    expect(panel.locator('[data-cal="fap-recall"]')).to_have_text("1.00")
    expect(panel).to_contain_text("final answers only")
    screenshot(page, "batch-calibration")

    panel.get_by_test_id("disagreements-link").click()
    rows = page.locator("[data-disagreement]")
    expect(rows).to_have_count(1)
    expect(rows.first.locator('[data-field="gold"]')).to_have_text("correct")
    expect(rows.first.locator('[data-field="judge"]')).to_have_text("wrong")
    expect(rows.first).to_contain_text("the second one")
    screenshot(page, "batch-disagreements")
