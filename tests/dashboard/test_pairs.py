"""The pairs browser: a batch's pairs filtered by kind and by prompt, a page at a time."""

from __future__ import annotations

import json

import httpx
from playwright.sync_api import Page, expect

from tests.dashboard.conftest import screenshot, sign_in
from tests.live import LiveApi


def shown(page: Page, attribute: str) -> list[str]:
    return page.locator("article.pair").evaluate_all(
        f"pairs => pairs.map(pair => pair.getAttribute('{attribute}'))"
    )


def test_pairs_filter_by_kind_and_prompt_and_page_through(
    page: Page, dashboard: LiveApi, api: httpx.Client, finished_batch: str
) -> None:
    sign_in(page, dashboard, f"/dashboard/batches/{finished_batch}/pairs")
    expect(page.locator("article.pair")).to_have_count(20)  # 24 pairs, 20 a page
    page.get_by_test_id("next-page").click()
    expect(page.locator("article.pair")).to_have_count(4)
    expect(page.get_by_test_id("next-page")).to_have_count(0)

    page.goto(f"{dashboard.url}/dashboard/batches/{finished_batch}/pairs")
    page.select_option("#kind", "scp")
    page.click("form.filters button[type=submit]")
    expect(page.locator("article.pair")).to_have_count(12)
    assert set(shown(page, "data-kind")) == {"scp"}
    screenshot(page, "pairs-scp")

    page.fill("#prompt", "q2")
    page.click("form.filters button[type=submit]")
    expect(page.locator("article.pair")).to_have_count(2)
    assert set(shown(page, "data-custom-id")) == {"q2"}
    assert set(shown(page, "data-kind")) == {"scp"}
    assert "kind=scp" in page.url and "prompt=q2" in page.url
    download = api.get(f"/v1/batches/{finished_batch}/pairs").text.splitlines()
    expected = [
        str(row["id"])
        for row in map(json.loads, download)
        if row["kind"] == "scp" and row["custom_id"] == "q2"
    ]
    assert shown(page, "data-pair") == expected
    pair = page.locator("article.pair").first
    expect(pair.locator(".rejected pre")).to_have_text("Step 1: 2 + 2 makes 5.")

    page.select_option("#kind", "fap")
    page.fill("#prompt", "2")  # a prompt's number works as well as its id
    page.click("form.filters button[type=submit]")
    expect(page.locator("article.pair")).to_have_count(2)
    assert set(shown(page, "data-prompt-index")) == {"2"}
    assert set(shown(page, "data-kind")) == {"fap"}

    page.fill("#prompt", "no-such-prompt")
    page.click("form.filters button[type=submit]")
    expect(page.get_by_test_id("no-pairs")).to_have_text("No pairs match these filters.")
