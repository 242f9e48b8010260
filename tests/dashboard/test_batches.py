"""The batches list with live progress, and a batch's page of counts."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect
from rq import Queue, SimpleWorker
from sqlalchemy import select

from app.kernel.config import Settings
from app.kernel.context import ProcessContext
from app.kernel.models import Chunk
from app.kernel.models.statuses import ChunkStage
from tests.conftest import api_key
from tests.dashboard.conftest import screenshot, sign_in, submit
from tests.faults.support import PROMPTS as TWELVE_PROMPTS
from tests.live import LiveApi
from workers import chunk_store
from workers.jobs import run_stage
from workers.progress import SAMPLE, chunk_progress


def test_progress_bar_follows_a_running_batch_without_reloading(
    process: ProcessContext,
    page: Page,
    dashboard: LiveApi,
    api: httpx.Client,
    settings: Settings,
    session_factory,  # type: ignore[no-untyped-def]
    stepwise: None,
) -> None:
    batch_id = submit(api, TWELVE_PROMPTS)  # three chunks of four prompts
    sign_in(page, dashboard)
    row = page.locator(f'[data-batch-row="{batch_id}"]')
    expect(row.locator('[data-field="status"]')).to_have_text("queued")
    expect(row.locator('[data-field="done"]')).to_have_text("0")
    page.evaluate("window.sameDocument = true")

    with session_factory() as session:
        chunk_ids = list(
            session.scalars(
                select(Chunk.id).where(Chunk.batch_id == batch_id).order_by(Chunk.index)
            )
        )
    context = process
    for done, chunk_id in zip((4, 8, 12), chunk_ids, strict=True):
        assert run_stage(context, chunk_id, ChunkStage.SAMPLE) == "sampled"
        assert run_stage(context, chunk_id, ChunkStage.JUDGE) == "succeeded"
        expect(row.locator('[data-field="done"]')).to_have_text(str(done))
        expect(row.locator('[data-field="samples"]')).to_have_text(str(done * 2))
        if done == 4:
            expect(row.locator('[data-field="status"]')).to_have_text("in_progress")
            width = row.locator(".fill").evaluate("element => element.style.width")
            assert width == "33%"
            screenshot(page, "batches-running")

    expect(row.locator('[data-field="status"]')).to_have_text("completed")
    expect(row.locator('[data-field="pairs"]')).to_have_text("24")
    assert row.locator(".fill").evaluate("element => element.style.width") == "100%"
    assert page.evaluate("window.sameDocument") is True  # updated in place, never reloaded
    expect(row.locator(".progress[data-live]")).to_have_count(0)  # and stopped polling
    screenshot(page, "batches-completed")


def test_batch_page_shows_counts_models_and_prompts(
    page: Page, dashboard: LiveApi, api: httpx.Client, finished_batch: str
) -> None:
    sign_in(page, dashboard, f"/dashboard/batches/{finished_batch}")
    expect(page.locator("h1")).to_contain_text(finished_batch)
    expect(page.locator('h1 [data-field="status"]')).to_have_text("completed")
    batch = api.get(f"/v1/batches/{finished_batch}").json()

    def count(name: str) -> str:
        return page.locator(f'[data-count="{name}"]').inner_text().split()[0]

    assert count("prompts") == "6" and count("completed") == "6" and count("failed") == "0"
    assert count("chunks") == str(batch["chunk_counts"]["total"]) == "2"
    assert count("samples") == "24"
    assert (count("fap-correct"), count("fap-wrong"), count("fap-unparseable")) == ("12", "12", "0")
    assert count("scp-parsed") == "12"
    assert (count("pairs-fap"), count("pairs-scp"), count("pairs-total")) == ("12", "12", "24")
    assert count("total_tokens") == f"{batch['usage']['total_tokens']:,}"
    expect(page.locator('[data-field="policy-model"]')).to_contain_text("canned-policy")
    expect(page.locator('[data-field="judge-model"]')).to_contain_text("canned-judge")
    rows = page.locator("table.prompts tbody tr")
    expect(rows).to_have_count(6)
    expect(rows.first).to_contain_text("q0")
    screenshot(page, "batch")

    rows.first.locator("a").click()
    expect(page.locator("h1")).to_contain_text("Prompt #0")


def test_another_projects_batch_is_not_found(
    page: Page,
    dashboard: LiveApi,
    finished_batch: str,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    outsider = LiveApi(url=dashboard.url, key=api_key(session_factory, "other"))
    sign_in(page, outsider)
    expect(page.locator(f'[data-batch-row="{finished_batch}"]')).to_have_count(0)
    response = page.goto(f"{dashboard.url}/dashboard/batches/{finished_batch}")
    assert response is not None and response.status == 404
    expect(page.locator("p.error")).to_have_text(f"batch '{finished_batch}' not found")
    progress = page.request.get(f"{dashboard.url}/dashboard/progress?batch={finished_batch}")
    assert progress.json() == {"batches": {}}


def test_progress_bar_moves_inside_a_running_chunk_and_notes_follow(
    process: ProcessContext,
    page: Page,
    dashboard: LiveApi,
    api: httpx.Client,
    settings: Settings,
    session_factory,  # type: ignore[no-untyped-def]
    stepwise: None,
) -> None:
    batch_id = submit(api, TWELVE_PROMPTS[:4])  # one chunk of four prompts
    sign_in(page, dashboard, f"/dashboard/batches/{batch_id}")
    notes = page.locator(f'[data-field="notes"][data-batch="{batch_id}"]')
    expect(notes).to_contain_text("no worker serves policy hf:canned-policy")
    bar = page.locator(f'.progress[data-batch="{batch_id}"]')
    assert bar.locator(".fill").evaluate("element => element.style.width") == "0%"

    # A worker (this test, as one) claims the chunk and reports its decoding as it goes.
    with session_factory() as session:
        chunk_id = session.scalars(select(Chunk.id).where(Chunk.batch_id == batch_id)).one()
    with session_factory.begin() as session:
        work = chunk_store.claim_chunk(
            session,
            chunk_id,
            stage=ChunkStage.SAMPLE,
            worker_name="test",
            lease_s=60,
            max_attempts=3,
        )
    assert work is not None
    progress = chunk_progress(process.redis, settings.queue_name, work)
    progress.interval_s = 0
    queue = Queue(f"{settings.queue_name}:sample:hf:canned-policy", connection=process.redis)
    worker = SimpleWorker([queue], connection=process.redis)
    worker.register_birth()  # a live worker serves the policy now: its note goes
    try:
        with progress.call(SAMPLE):
            progress.decoded(tokens=64, finished=4, fraction=0.3)
            expect(bar.locator('[data-field="samples"]')).to_have_text("4")
            expect(bar.locator(".fill")).to_have_attribute("style", re.compile(r"width: 10%"))
            expect(bar.locator('[data-field="done"]')).to_have_text("0")  # no prompt done yet
            progress.decoded(tokens=64, finished=4, fraction=0.9)
            expect(bar.locator('[data-field="samples"]')).to_have_text("8")
            expect(bar.locator(".fill")).to_have_attribute("style", re.compile(r"width: 30%"))
            expect(bar.locator('[data-field="tokens_per_s"]')).not_to_have_text("0")
        expect(notes).not_to_contain_text("no worker serves policy")
        screenshot(page, "batch-progress-inside-a-chunk")
    finally:
        worker.register_death()
        progress.clear()
