"""The datasets and models pages, reached from the navigation."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from app.kernel.context import ProcessContext
from tests.dashboard.conftest import screenshot, sign_in
from tests.dashboard.test_training import dpo_job, report_run
from tests.live import LiveApi


def test_datasets_page_lists_each_version_with_its_pairs_and_batches(
    page: Page, dashboard: LiveApi, api: httpx.Client, finished_batch: str
) -> None:
    made = [
        api.post("/v1/datasets", json={"name": "fin-dpo", "batch_ids": [finished_batch], **extra})
        for extra in ({}, {"kinds": ["fap"]})
    ]
    assert all(response.status_code == 201 for response in made), [r.text for r in made]
    first, second = (response.json() for response in made)

    sign_in(page, dashboard)
    page.get_by_role("link", name="Datasets").click()
    expect(page.locator("h1")).to_have_text("Datasets")
    rows = page.locator("tr[data-dataset-row]")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_attribute("data-dataset-row", second["id"])  # newest first
    newest = rows.nth(0).locator("td").all_inner_texts()
    assert newest[:7] == [
        second["id"],
        "fin-dpo",
        "2",
        str(second["counts"]["total"]),
        str(second["counts"]["fap"]),
        "0",
        "0",
    ]
    expect(rows.nth(1).locator('[data-field="total"]')).to_have_text(str(first["counts"]["total"]))
    screenshot(page, "datasets")
    rows.nth(1).get_by_role("link", name=finished_batch).click()
    expect(page).to_have_url(f"{dashboard.url}/dashboard/batches/{finished_batch}")


def test_models_page_lists_registered_and_trained_models_with_their_job(
    page: Page,
    dashboard: LiveApi,
    api: httpx.Client,
    process: ProcessContext,
    tiny_model_dir: Path,
    tmp_path: Path,
) -> None:
    job_id = dpo_job(api, tiny_model_dir)
    report_run(process, job_id, tmp_path)
    output_model = api.get(f"/v1/training-jobs/{job_id}").json()["output_model"]

    sign_in(page, dashboard)
    page.get_by_role("link", name="Models").click()
    expect(page.locator("h1")).to_have_text("Models")
    registered = page.locator('[data-model-row="smollm2-135m-instruct"]')
    expect(registered).to_contain_text("registered")
    trained = page.locator(f'[data-model-row="{output_model}"]')
    expect(trained).to_contain_text("trained")
    expect(trained).not_to_contain_text(str(tmp_path))  # no host path
    screenshot(page, "models")
    trained.get_by_role("link", name=job_id).click()
    expect(page.get_by_test_id("job-status")).to_have_text("succeeded")
