"""The sample viewer: a question, its answers and verdicts, and each wrong answer's first error
marked in place next to the judge's correction."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from app.kernel.config import Settings
from tests.dashboard.conftest import screenshot, sign_in, submit
from tests.dashboard.engines import ANSWERS, STEP_2_CORRECTION, WRONG_AT_STEP_2
from tests.live import LiveApi
from tests.workers.test_pipeline import serve_canned


def test_wrong_answers_show_prefix_and_first_wrong_step_as_the_verdict_has_them(
    page: Page, dashboard: LiveApi, api: httpx.Client, finished_batch: str
) -> None:
    samples = api.get(f"/v1/batches/{finished_batch}/samples", params={"limit": 4}).json()["data"]
    assert [sample["custom_id"] for sample in samples] == ["q0"] * 4
    sign_in(page, dashboard, f"/dashboard/batches/{finished_batch}/prompts/0")
    expect(page.get_by_test_id("question")).to_have_text(samples[0]["question"])
    expect(page.get_by_test_id("reference")).to_have_text("B")
    answers = page.locator("article.answer")
    expect(answers).to_have_count(4)

    for sample in samples:
        answer = page.locator(f'article[data-sample="{sample["id"]}"]')
        expect(answer.get_by_test_id("fap-verdict")).to_have_text(sample["fap"]["verdict"])
        if sample["fap"]["verdict"] == "correct":
            expect(answer.get_by_test_id("answer-text")).to_have_text(sample["text"])
            expect(answer.locator("[data-span]")).to_have_count(0)
            continue
        scp = sample["scp"]
        assert scp["outcome"] == "parsed"
        prefix = answer.locator('[data-span="correct-prefix"]')
        wrong = answer.locator('[data-span="wrong-step"]')
        assert prefix.text_content() == scp["correct_prefix"]
        assert wrong.text_content() == scp["wrong_step"]
        assert wrong.evaluate("element => element.tagName") == "MARK"
        # The marks sit inside the whole answer, which reads unchanged.
        assert answer.get_by_test_id("answer-text").text_content() == sample["text"]
        expect(answer.get_by_test_id("correction")).to_have_text(scp["correction"])
        expect(answer.get_by_test_id("justification")).to_have_text(scp["justification"])

    at_step_2 = samples[3]
    assert at_step_2["text"] == WRONG_AT_STEP_2 == ANSWERS[3]
    assert at_step_2["scp"]["correct_prefix"] == "Step 1: 2 + 2 makes 4.\n"
    assert at_step_2["scp"]["wrong_step"] == "Step 2: 4 + 1 makes 5, so option A."
    assert at_step_2["scp"]["correction"] == STEP_2_CORRECTION
    at_step_1 = samples[1]
    assert at_step_1["scp"]["correct_prefix"] == ""
    assert at_step_1["scp"]["wrong_step"] == "Step 1: 2 + 2 makes 5."
    screenshot(page, "sample-viewer")

    page.click("text=#1 →")
    expect(page.locator("h1")).to_contain_text("Prompt #1")


def test_model_and_user_text_is_shown_as_text_never_as_markup(
    page: Page, dashboard: LiveApi, api: httpx.Client, settings: Settings, stepwise: None
) -> None:
    question = 'What is 2 + 2? <img src=x onerror="window.injected=1"><b>A. 5</b> B. 4'
    batch_id = submit(api, [{"id": "<i>q</i>", "question": question, "reference_answer": "B"}])
    serve_canned(settings)
    sign_in(page, dashboard, f"/dashboard/batches/{batch_id}/prompts/0")
    expect(page.get_by_test_id("question")).to_have_text(question)
    expect(page.locator("main img, main b, main i")).to_have_count(0)
    assert page.evaluate("window.injected") is None
