"""Reviewing in the browser: overturn a verdict with a key, move a first wrong step, edit a
correction; the pairs change, calibration moves, the review queue leaves reviewed answers out."""

from __future__ import annotations

import httpx
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect
from redis import Redis
from sqlalchemy import select

from app.kernel.config import Settings
from app.kernel.models import Review
from app.main import create_app
from tests.conftest import api_key, bearer
from tests.dashboard.conftest import screenshot, sign_in
from tests.dashboard.engines import STEP_2_CORRECTION
from tests.dashboard.forms import csrf_token_of, sign_in_client
from tests.live import LiveApi
from tests.workers.canned_engines import RIGHT, WRONG
from tests.workers.test_given_answers import judge_only
from tests.workers.test_pipeline import QUESTION

EDITED = "Step 2: 4 is option B, so the answer is B."


def test_review_verdicts_steps_and_corrections_in_the_sample_viewer(
    page: Page, dashboard: LiveApi, api: httpx.Client, finished_batch: str
) -> None:
    batch_id = finished_batch
    blocked: list[str] = []
    page.on(
        "console",
        lambda message: (
            blocked.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    samples = api.get(f"/v1/batches/{batch_id}/samples", params={"limit": 4}).json()["data"]
    right, wrong, _, wrong_at_2 = samples  # answers of prompt 0; the judge got each right
    assert api.get(f"/v1/batches/{batch_id}").json()["calibration"] is None
    viewer = f"/dashboard/batches/{batch_id}/prompts/0"
    sign_in(page, dashboard, viewer)

    # The key `o` overturns the current answer's verdict: the first one, judged correct.
    first = page.locator(f"#answer-{right['id']}")
    expect(first).to_have_class("answer current")
    page.keyboard.press("o")
    page.wait_for_load_state()
    expect(first.get_by_test_id("review-badge")).to_have_text(
        "reviewed by tests: wrong, no wrong step"
    )
    expect(first.get_by_test_id("fap-verdict")).to_have_text("correct")  # the judge's, kept

    # `n` moves on; the second answer's first wrong step goes from step 1 to step 2.
    page.keyboard.press("n")
    second = page.locator(f"#answer-{wrong['id']}")
    expect(second).to_have_class("answer current")
    second.get_by_test_id("first-wrong-step").select_option("2")
    second.get_by_test_id("correction-input").fill("")
    second.get_by_test_id("save-review").click()
    page.wait_for_load_state()
    expect(second.get_by_test_id("review-error")).to_have_text("correction: must not be empty")
    second.get_by_test_id("first-wrong-step").select_option("2")
    second.get_by_test_id("correction-input").fill("Step 2: Option B is 4.")
    second.get_by_test_id("save-review").click()
    page.wait_for_load_state()
    expect(second.get_by_test_id("review-badge")).to_have_text("reviewed by tests: wrong, step 2")

    # The fourth answer keeps the judge's step 2; its correction is edited.
    fourth = page.locator(f"#answer-{wrong_at_2['id']}")
    expect(fourth.get_by_test_id("correction-input")).to_have_value(STEP_2_CORRECTION)
    fourth.get_by_test_id("correction-input").fill(EDITED)
    fourth.get_by_test_id("save-review").click()
    page.wait_for_load_state()
    expect(fourth.get_by_test_id("review-badge")).to_have_text("reviewed by tests: wrong, step 2")
    screenshot(page, "sample-viewer-reviewed")

    # The pairs of prompt 0 are rebuilt from the reviews.
    page.goto(f"{dashboard.url}/dashboard/batches/{batch_id}/pairs?kind=scp&prompt=0")
    scp = page.locator("article.pair[data-reviewed]")
    expect(scp).to_have_count(2)
    expect(scp.locator("section.chosen pre")).to_have_text(["Step 2: Option B is 4.", EDITED])
    expect(scp.locator("section.rejected pre")).to_have_text(
        ["Step 2: Option A is 5.", "Step 2: 4 + 1 makes 5, so option A."]
    )
    expect(page.locator("article.pair:not([data-reviewed])")).to_have_count(0)

    # Three reviewed answers are gold: the judge got 2 of 3 final answers right (it called the
    # overturned one correct), and named the person's first wrong step once in three.
    page.goto(f"{dashboard.url}/dashboard/batches/{batch_id}")
    panel = page.get_by_test_id("calibration")
    expect(panel.locator('[data-cal="fap-n"]')).to_have_text("3")
    expect(panel.locator('[data-cal="fap-accuracy"]')).to_have_text("0.67")
    expect(panel.locator('[data-cal="scp-wrong_accuracy"]')).to_contain_text("0.33")
    screenshot(page, "batch-calibration-after-review")
    panel.get_by_test_id("disagreements-link").click()
    rows = page.locator("[data-disagreement]")
    expect(rows).to_have_count(2)  # the overturned verdict, the moved step
    expect(rows.locator('[data-field="gold"]')).to_have_text(
        ["wrong, final line only (reviewed by tests)", "wrong, step 2 (reviewed by tests)"]
    )
    page.goto(f"{dashboard.url}/dashboard/batches/{batch_id}")

    # The queue leaves the reviewed answers out; an answer opened from it leads back to it.
    page.get_by_test_id("review-queue-link").click()
    rows = page.locator("[data-queued]")
    expect(rows).to_have_count(20)  # a page of the 21 left
    reviewed = {str(s["id"]) for s in (right, wrong, wrong_at_2)}
    assert not reviewed & set(rows.evaluate_all("rows => rows.map(r => r.dataset.queued)"))
    rows.first.get_by_test_id("queue-open").click()
    page.wait_for_load_state()
    current = page.locator("article.answer.current")
    expect(current).to_have_count(1)
    page.keyboard.press("a")  # accept: the judge's verdict becomes the person's
    page.wait_for_load_state()
    expect(page.locator("article.answer.current").get_by_test_id("review-badge")).to_contain_text(
        "reviewed by tests"
    )
    for _ in range(4):
        page.keyboard.press("n")
    page.wait_for_url(f"**/dashboard/batches/{batch_id}/review-queue")
    expect(page.locator("[data-queued]")).to_have_count(20)
    assert blocked == []  # the keys and forms work under the page's CSP


def test_a_review_sent_from_another_site_or_signed_out_stores_nothing(
    settings: Settings, redis: Redis, session_factory
) -> None:  # type: ignore[no-untyped-def]
    key = api_key(session_factory)
    with TestClient(create_app(settings), follow_redirects=False) as client:
        prompt = {"question": QUESTION, "reference_answer": "B", "answers": [RIGHT, WRONG]}
        created = client.post(
            "/v1/batches",
            json={"prompts": [prompt], "judge": {"engine": "rule"}},
            headers=bearer(key),
        )
        batch_id = created.json()["id"]
        judge_only(settings, "rule:rule")
        sample_id = client.get(f"/v1/batches/{batch_id}/samples", headers=bearer(key)).json()[
            "data"
        ][1]["id"]
        path = f"/dashboard/batches/{batch_id}/samples/{sample_id}/review"
        form = {"action": "overturn"}

        signed_out = client.post(path, data=form, headers={"Origin": "http://testserver"})
        assert signed_out.status_code == 403  # no session, so no token it could carry
        assert signed_out.json()["detail"].startswith("csrf_token: missing")

        assert sign_in_client(client, key).status_code == 303
        token = csrf_token_of(client.get(f"/dashboard/batches/{batch_id}/prompts/0").text)
        foreign = client.post(
            path, data={**form, "csrf_token": token}, headers={"Origin": "https://evil.example"}
        )
        assert foreign.status_code == 403
        assert foreign.json()["detail"].startswith("origin: only the dashboard's own pages")
        tokenless = client.post(path, data=form, headers={"Origin": "http://testserver"})
        assert tokenless.status_code == 403

        own = client.post(
            path, data={**form, "csrf_token": token}, headers={"Origin": "http://testserver"}
        )
        assert own.status_code == 303
        assert own.headers["location"] == (
            f"/dashboard/batches/{batch_id}/prompts/0#answer-{sample_id}"
        )
    with session_factory() as session:
        reviews = session.scalars(select(Review)).all()
    assert [(r.reviewer, r.after["final_answer_correct"]) for r in reviews] == [("tests", True)]
