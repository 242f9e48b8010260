"""Cancel buttons in the real browser: a batch, an evaluation and a training job of the project,
queued (no worker runs here), cancelled from their pages; the status changes there and in the
API, and the button goes away."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect
from sqlalchemy import select, update

from app.kernel.db.base import utcnow
from app.kernel.models import Batch, Chunk, TrainingJob
from app.kernel.models.statuses import BatchStatus, RunStatus
from tests.api.test_evaluations import QUESTIONS, RULE
from tests.dashboard.conftest import screenshot, sign_in, submit
from tests.dashboard.test_evaluations import evaluate
from tests.dashboard.test_training import dpo_job
from tests.live import LiveApi
from tests.workers.test_pipeline import PROMPTS


def test_cancel_a_queued_batch_from_its_page(
    page: Page, dashboard: LiveApi, api: httpx.Client
) -> None:
    batch_id = submit(api, PROMPTS)
    sign_in(page, dashboard, f"/dashboard/batches/{batch_id}")
    expect(page.locator("h1 .status")).to_have_text("queued")
    screenshot(page, "cancel-batch-before")

    page.get_by_role("button", name="Cancel batch").click()
    expect(page.locator("h1 .status")).to_have_text("cancelled")
    expect(page.get_by_test_id("page-notice")).to_have_text("Cancelled.")
    expect(page.get_by_role("button", name="Cancel batch")).to_have_count(0)
    assert page.url == f"{dashboard.url}/dashboard/batches/{batch_id}?notice=cancelled"
    assert api.get(f"/v1/batches/{batch_id}").json()["status"] == "cancelled"
    screenshot(page, "cancel-batch-after")


def test_cancel_a_running_batch_lets_its_running_chunk_finish(
    page: Page,
    dashboard: LiveApi,
    api: httpx.Client,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    batch_id = submit(api, PROMPTS)
    with session_factory.begin() as session:  # as a worker marks the chunk it took
        session.execute(
            update(Batch).where(Batch.id == batch_id).values(status=BatchStatus.IN_PROGRESS)
        )
        first = session.scalars(select(Chunk).where(Chunk.batch_id == batch_id)).first()
        assert first is not None
        first.status, first.started_at = RunStatus.RUNNING, utcnow()
    sign_in(page, dashboard, f"/dashboard/batches/{batch_id}")
    expect(page.locator("h1 .status")).to_have_text("in_progress")

    page.get_by_role("button", name="Cancel batch").click()
    expect(page.locator("h1 .status")).to_have_text("cancelling")
    expect(page.get_by_test_id("page-notice")).to_contain_text("Cancelling: nothing new starts")
    expect(page.get_by_role("button", name="Cancel batch")).to_have_count(0)
    counts = api.get(f"/v1/batches/{batch_id}").json()
    assert counts["status"] == "cancelling"
    assert counts["chunk_counts"]["running"] == 1  # left to finish


def test_cancel_a_queued_evaluation_from_the_evaluations_page(
    page: Page, dashboard: LiveApi, api: httpx.Client
) -> None:
    evaluation_id = evaluate(api, "canned-policy")
    sign_in(page, dashboard, "/dashboard/evaluations")
    row = page.locator(f"tr[data-unfinished-row={evaluation_id}]")
    expect(row.locator("[data-field=status]")).to_have_text("queued")

    row.get_by_role("button", name="Cancel").click()
    expect(page.get_by_test_id("page-notice")).to_have_text("Cancelled.")
    expect(row.locator("[data-field=status]")).to_have_text("cancelled")
    expect(row.get_by_role("button", name="Cancel")).to_have_count(0)
    assert api.get(f"/v1/evaluations/{evaluation_id}").json()["status"] == "cancelled"
    screenshot(page, "cancel-evaluation")


def test_cancel_a_queued_training_job_from_its_page(
    page: Page, dashboard: LiveApi, api: httpx.Client, tiny_model_dir: Path
) -> None:
    job_id = dpo_job(api, tiny_model_dir)
    sign_in(page, dashboard, f"/dashboard/training-jobs/{job_id}")
    expect(page.get_by_test_id("job-status")).to_have_text("queued")

    page.get_by_role("button", name="Cancel job").click()
    expect(page.get_by_test_id("job-status")).to_have_text("cancelled")
    expect(page.get_by_test_id("page-notice")).to_have_text("Cancelled.")
    expect(page.get_by_role("button", name="Cancel job")).to_have_count(0)
    assert api.get(f"/v1/training-jobs/{job_id}").json()["status"] == "cancelled"
    screenshot(page, "cancel-training-job")


def test_a_running_training_job_is_asked_to_stop(
    page: Page,
    dashboard: LiveApi,
    api: httpx.Client,
    tiny_model_dir: Path,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    job_id = dpo_job(api, tiny_model_dir)
    with session_factory.begin() as session:  # as the trainer marks a job it took
        session.execute(
            update(TrainingJob).where(TrainingJob.id == job_id).values(status=RunStatus.RUNNING)
        )
    sign_in(page, dashboard, f"/dashboard/training-jobs/{job_id}")
    page.get_by_role("button", name="Cancel job").click()
    expect(page.get_by_text("Cancel requested: it stops after its current step.")).to_be_visible()
    expect(page.get_by_test_id("job-status")).to_have_text("running")
    expect(page.get_by_role("button", name="Cancel job")).to_have_count(0)
    assert api.get(f"/v1/training-jobs/{job_id}").json()["cancel_requested"] is True


def test_cancel_a_training_jobs_evaluation_from_the_jobs_page(
    page: Page, dashboard: LiveApi, api: httpx.Client
) -> None:
    def uploaded(purpose: str, lines: list[dict[str, str]]) -> str:
        body = "".join(json.dumps(line) + "\n" for line in lines)
        response = api.post(
            "/v1/files",
            files={"file": ("data.jsonl", body.encode(), "application/jsonl")},
            data={"purpose": purpose},
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    created = api.post(
        "/v1/training-jobs",
        json={
            "method": "sft",
            "base_model": "canned-policy",
            "data": {"files": [uploaded("sft", [{"prompt": "p", "completion": "c"}])]},
            "evaluation": {"file_id": uploaded("eval", QUESTIONS), "judge": RULE},
        },
    )
    assert created.status_code == 201, created.text
    job = created.json()
    before = job["evaluation"]["before"]["id"]
    sign_in(page, dashboard, f"/dashboard/training-jobs/{job['id']}")
    summary = page.locator("p", has_text="Accuracy on the job's held-out")
    expect(summary).to_contain_text(f"{before}, queued")

    page.get_by_role("button", name=f"Cancel evaluation {before}").click()
    assert page.url == f"{dashboard.url}/dashboard/training-jobs/{job['id']}?notice=cancelled"
    expect(summary).to_contain_text(f"{before}, cancelled")
    expect(page.get_by_role("button", name=f"Cancel evaluation {before}")).to_have_count(0)
    assert api.get(f"/v1/evaluations/{before}").json()["status"] == "cancelled"
