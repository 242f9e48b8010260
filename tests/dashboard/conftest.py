"""Dashboard tests: Debian's chromium, driven by Playwright, against the real app served live,
on data the worker made with canned engines."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from redis import Redis

from app.kernel.config import Settings
from tests.conftest import api_key, bearer
from tests.dashboard.engines import StepwiseJudge, StepwisePolicy
from tests.faults.faulty_engines import serve_from_registry
from tests.live import LiveApi, live_api
from tests.workers.test_pipeline import CANNED_OPTIONS, PROMPTS, serve_canned
from workers.engines import registry

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-screenshots"


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Headless Debian chromium; a clear failure when it is not installed. Package-scoped:
    Playwright's sync API holds an event loop open on this thread, which later tests that run
    their own (asyncio.run) must not find."""
    if os.environ.get("FINDAP_SKIP_BROWSER") == "1":
        pytest.skip("FINDAP_SKIP_BROWSER=1: dashboard browser tests skipped")
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run `bash scripts/browser.sh` to install Debian's chromium "
            "(or set FINDAP_SKIP_BROWSER=1 to skip the dashboard tests)",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies) per test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def dashboard(settings: Settings, redis: Redis, session_factory) -> Iterator[LiveApi]:  # type: ignore[no-untyped-def]
    """The app served live, with a key of the project `test`."""
    with live_api(settings, api_key(session_factory)) as live:
        yield live


@pytest.fixture
def api(dashboard: LiveApi) -> Iterator[httpx.Client]:
    """The /v1 API of the live server, as the same project."""
    with httpx.Client(base_url=dashboard.url, headers=bearer(dashboard.key), timeout=30) as client:
        yield client


@pytest.fixture
def stepwise(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """canned-policy and canned-judge served by the stepwise engines, in this process."""
    monkeypatch.setitem(registry.ENGINE_FACTORIES, "hf", registry.ENGINE_FACTORIES["hf"])
    serve_from_registry(StepwisePolicy(), StepwiseJudge())
    yield
    registry.clear_engine_cache()


def submit(api: httpx.Client, prompts: list[dict[str, Any]], **options: Any) -> str:
    response = api.post("/v1/batches", json={"prompts": prompts, **CANNED_OPTIONS, **options})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


STEPWISE_POLICY = {"model": "canned-policy", "samples_per_prompt": 4}


@pytest.fixture
def finished_batch(settings: Settings, api: httpx.Client, stepwise: None) -> str:
    """A completed batch of six questions, four answers each (two wrong, at steps 1 and 2)."""
    batch_id = submit(api, PROMPTS, policy=STEPWISE_POLICY)
    serve_canned(settings)
    assert api.get(f"/v1/batches/{batch_id}").json()["status"] == "completed"
    return batch_id


def sign_in(page: Page, live: LiveApi, path: str = "/dashboard") -> None:
    page.goto(live.url + path)
    page.fill("#key", live.key)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def screenshot(page: Page, name: str) -> Path:
    """Save the whole page under test-screenshots/ (kept out of git)."""
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
