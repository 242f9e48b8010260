"""The evaluations comparison page: two models side by side per task, a table with intervals
and a bar chart, and choosing which evaluations to compare."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from app.kernel.config import Settings
from tests.api.test_evaluations import QUESTIONS, RULE
from tests.dashboard.conftest import screenshot, sign_in
from tests.live import LiveApi
from tests.workers.canned_engines import RIGHT, WRONG, CannedPolicy
from workers.engines import registry
from workers.engines.base import Completion, Generation, Message, SamplingParams
from workers.worker import run_worker


class ContraryPolicy(CannedPolicy):
    """Answers A (wrong for the arith questions, right for the others)."""

    model_name = "another-policy"

    def generate(
        self, conversations: list[list[Message]], params: SamplingParams
    ) -> list[Generation]:
        texts = [WRONG if i % 2 == 0 else RIGHT for i in range(params.n)]
        return [
            Generation(prompt_tokens=20, completions=[Completion(t, 12) for t in texts])
            for _ in conversations
        ]


@pytest.fixture
def two_policies(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    engines = {"canned-policy": CannedPolicy(), "another-policy": ContraryPolicy()}
    load_hf = registry.ENGINE_FACTORIES["hf"]

    def factory(model: str, models_dir: Path, device: str, options: Any) -> Any:
        return engines.get(model) or load_hf(model, models_dir, device, options)

    monkeypatch.setitem(registry.ENGINE_FACTORIES, "hf", factory)
    registry.clear_engine_cache()
    yield
    registry.clear_engine_cache()


def evaluate(api: httpx.Client, model: str) -> str:
    response = api.post(
        "/v1/evaluations", json={"model": model, "prompts": QUESTIONS, "judge": RULE}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.mark.usefixtures("two_policies")
def test_comparison_page_shows_models_per_task_in_a_table_and_a_bar_chart(
    page: Page, dashboard: LiveApi, api: httpx.Client, settings: Settings
) -> None:
    canned, contrary = evaluate(api, "canned-policy"), evaluate(api, "another-policy")
    policies = ["hf:canned-policy", "hf:another-policy"]
    run_worker(settings.model_copy(update={"policies": policies, "judges": []}), burst=True)
    for evaluation_id in (canned, contrary):
        assert api.get(f"/v1/evaluations/{evaluation_id}").json()["status"] == "completed"

    sign_in(page, dashboard)
    page.click("nav >> text=Evaluations")
    expect(page).to_have_url(f"{dashboard.url}/dashboard/evaluations")
    table = page.get_by_test_id("comparison")
    # With none chosen: the newest evaluation of each model, side by side.
    expect(table.locator("thead th")).to_have_text(["Task", "another-policy", "canned-policy"])
    expect(table.locator("tbody tr")).to_have_count(3)  # overall, arith, default
    arith = table.locator("tr[data-task=arith]")
    expect(arith.locator(f"td[data-evaluation={canned}] .accuracy")).to_have_text("1.000")
    expect(arith.locator(f"td[data-evaluation={contrary}] .accuracy")).to_have_text("0.000")
    overall = table.locator("tr[data-task=overall]")
    expect(overall.locator(f"td[data-evaluation={canned}]")).to_contain_text("0.667 [0.30, 0.90]")
    expect(overall.locator(f"td[data-evaluation={contrary}]")).to_contain_text("0.333")

    chart = page.locator("figure[data-chart^='Accuracy per task']")
    expect(chart.locator("g[data-bar-series]")).to_have_count(6)  # 2 models x 3 tasks
    expect(
        chart.locator("g[data-bar-series='canned-policy'][data-bar-group='default']")
    ).to_have_attribute("data-value", "0.0000")
    expect(
        chart.locator("g[data-bar-series='another-policy'][data-bar-group='default']")
    ).to_have_attribute("data-value", "1.0000")
    screenshot(page, "evaluations-comparison")

    # Choosing one evaluation shows it alone.
    page.uncheck(f"input[value={contrary}]")
    page.click("form[data-testid=choose] button[type=submit]")
    expect(table.locator("thead th")).to_have_text(["Task", "canned-policy"])
    expect(chart.locator("g[data-bar-series]")).to_have_count(3)
    assert f"ids={canned}" in page.url


@pytest.mark.usefixtures("two_policies")
def test_training_job_page_shows_before_and_after_per_task(
    page: Page, dashboard: LiveApi, api: httpx.Client, settings: Settings
) -> None:
    def uploaded(purpose: str, lines: list[dict[str, Any]]) -> str:
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
    run_worker(
        settings.model_copy(update={"policies": ["hf:canned-policy"], "judges": []}), burst=True
    )

    sign_in(page, dashboard, f"/dashboard/training-jobs/{job['id']}")
    table = page.get_by_test_id("before-after")
    expect(table.locator("tbody tr")).to_have_count(3)  # overall, arith, default
    overall = table.locator("tr[data-task=overall]")
    expect(overall.locator("td[data-side=before]")).to_have_text("0.667 [0.30, 0.90]")
    # The trained model's evaluation waits for a model the job has not made yet.
    expect(overall.locator("td[data-side=after]")).to_have_text("—")
    expect(overall.locator("td[data-side=delta]")).to_have_text("—")
    expect(page.locator("p", has_text="Accuracy on the job's held-out")).to_contain_text(
        f"{job['evaluation']['after']['id']}, waiting"
    )
