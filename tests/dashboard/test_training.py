"""A training job's page: status, hyperparameters, loss and DPO reward charts, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from app.kernel.config import Settings
from app.kernel.context import ProcessContext
from app.kernel.models.statuses import RunStatus
from tests.dashboard.conftest import screenshot, sign_in
from tests.live import LiveApi
from tests.training.jobs import preference_lines
from training import job_store

STEPS = 20


def dpo_job(api: httpx.Client, model_dir: Path) -> str:
    body = "".join(json.dumps(line) + "\n" for line in preference_lines())
    uploaded = api.post(
        "/v1/files",
        files={"file": ("prefs.jsonl", body.encode(), "application/jsonl")},
        data={"purpose": "preference"},
    )
    assert uploaded.status_code == 201, uploaded.text
    created = api.post(
        "/v1/training-jobs",
        json={
            "method": "dpo",
            "base_model": str(model_dir),
            "data": {"files": [uploaded.json()["id"]]},
            "hyperparameters": {"max_steps": STEPS, "checkpoint_every": 10},
        },
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def report_run(context: ProcessContext, job_id: str, output_dir: Path) -> None:
    """What a DPO trainer reports through job_store: metrics each step, checkpoints, the end."""
    assert job_store.claim_job(context, job_id, output_dir=str(output_dir))
    job_store.add_events(
        context,
        job_id,
        [
            {
                "kind": "metrics",
                "step": step,
                "metrics": {
                    "loss": 0.693 - 0.02 * step,
                    "learning_rate": 5e-7,
                    "rewards/chosen": 0.01 * step,
                    "rewards/rejected": -0.015 * step,
                    "rewards/margins": 0.025 * step,
                    "rewards/accuracies": min(1.0, 0.5 + 0.05 * step),
                },
            }
            for step in range(1, STEPS + 1)
        ],
    )
    for step in (10, 20):
        job_store.add_checkpoint(
            context,
            job_id,
            step=step,
            loss=0.693 - 0.02 * step,
            path=str(output_dir / f"checkpoint-{step}"),
        )
    job_store.add_events(
        context, job_id, [{"kind": "eval", "step": 20, "metrics": {"eval_loss": 0.4}}]
    )
    assert job_store.finish_job(
        context,
        job_id,
        RunStatus.SUCCEEDED,
        result={"steps": STEPS, "train_loss": 0.5},
        model_path=str(output_dir / "model"),
    )


def test_training_job_page_charts_loss_and_reward_margins_and_lists_checkpoints(
    page: Page,
    dashboard: LiveApi,
    api: httpx.Client,
    settings: Settings,
    tiny_model_dir: Path,
    tmp_path: Path,
) -> None:
    job_id = dpo_job(api, tiny_model_dir)
    sign_in(page, dashboard, "/dashboard/training-jobs")
    expect(page.locator(f'[data-job-row="{job_id}"] .status')).to_have_text("queued")
    with ProcessContext.open(settings, name="dash-test") as context:
        report_run(context, job_id, tmp_path)

    page.locator(f'[data-job-row="{job_id}"] a').first.click()
    expect(page.get_by_test_id("job-status")).to_have_text("succeeded")
    expect(page.locator('[data-hyperparameter="beta"]')).to_have_text("0.1")
    expect(page.locator('[data-hyperparameter="max_steps"]')).to_have_text(str(STEPS))

    loss = page.locator('figure[data-chart="Loss"]')
    expect(loss.locator('polyline[data-series="loss"]')).to_have_attribute(
        "data-points", str(STEPS)
    )
    expect(loss.locator('polyline[data-series="eval_loss"]')).to_have_attribute("data-points", "1")
    rewards = page.locator('figure[data-chart="DPO rewards"]')
    for series in ("rewards/margins", "rewards/chosen", "rewards/rejected"):
        line = rewards.locator(f'polyline[data-series="{series}"]')
        expect(line).to_have_attribute("data-points", str(STEPS))
        assert len(line.get_attribute("points").split()) == STEPS  # type: ignore[union-attr]
    expect(rewards).to_contain_text("last 0.5")  # the margin at the last step
    # Margins grow: the line climbs (SVG y runs downwards).
    margins = rewards.locator('polyline[data-series="rewards/margins"]').get_attribute("points")
    ys = [float(point.split(",")[1]) for point in margins.split()]  # type: ignore[union-attr]
    assert ys == sorted(ys, reverse=True) and ys[0] > ys[-1]

    checkpoints = page.get_by_test_id("checkpoints").locator("tbody tr")
    expect(checkpoints).to_have_count(2)
    expect(checkpoints.nth(0)).to_contain_text("checkpoint-10")
    expect(checkpoints.nth(1)).to_contain_text("0.2930")
    expect(page.locator(".history")).to_contain_text("running on dash-test")
    screenshot(page, "training-job")


def test_training_job_page_reads_at_a_glance(
    page: Page,
    dashboard: LiveApi,
    api: httpx.Client,
    process: ProcessContext,
    tiny_model_dir: Path,
    tmp_path: Path,
) -> None:
    """Hyperparameters by importance with a note where max_steps overrides epochs, the running
    job's step of all, rounded results, and chart ticks that never repeat."""
    job_id = dpo_job(api, tiny_model_dir)
    assert job_store.claim_job(process, job_id, output_dir=str(tmp_path))
    job_store.add_events(
        process,
        job_id,
        [
            {
                "kind": "status",
                "step": None,
                "message": f"training on 8 examples, {STEPS} optimizer steps",
                "metrics": {"preference_pairs": 8, "total_steps": STEPS},
            },
            *(
                {"kind": "metrics", "step": step, "metrics": {"loss": 0.69315 - step * 1e-5}}
                for step in (1, 2)
            ),
        ],
    )
    sign_in(page, dashboard, f"/dashboard/training-jobs/{job_id}")
    expect(page.get_by_test_id("job-progress")).to_have_text(f"step 2/{STEPS}, loss 0.6931")
    names = page.get_by_test_id("hyperparameters").locator("th").all_inner_texts()
    assert names[:7] == [
        "learning_rate",
        "beta",
        "nll_weight",
        "loss_type",
        "max_steps",
        "epochs",
        "batch_size",
    ]
    expect(page.locator('[data-hyperparameter="learning_rate"]')).to_have_text("5e-07")
    expect(page.locator('[data-note="epochs"]')).to_have_text("max_steps overrides epochs")
    loss = page.locator('figure[data-chart="Loss"]')
    x_labels = loss.locator("text.tick[text-anchor=middle]").all_text_contents()
    y_labels = loss.locator("text.tick[text-anchor=end]").all_text_contents()
    assert x_labels == ["1", "2"]  # two steps: not 1, 1, 2, 2, 2
    assert len(y_labels) == len(set(y_labels)) > 1, y_labels

    assert job_store.finish_job(
        process,
        job_id,
        RunStatus.SUCCEEDED,
        result={
            "steps": 2,
            "train_loss": 0.6931461334228516,
            "train_runtime": 223.45678,
            "total_flos": 123456789012.0,
            "epoch": 2.0,
            "examples": 248996,
            "weights_changed": True,
        },
        model_path=str(tmp_path / "model"),
    )
    page.reload()
    shown = {
        name: page.locator(f'[data-result="{name}"]').inner_text()
        for name in ("train_loss", "train_runtime", "total_flos", "epoch", "examples")
    }
    assert shown == {
        "train_loss": "0.6931",
        "train_runtime": "223.5",
        "total_flos": "1.235e+11",
        "epoch": "2",
        "examples": "248,996",
    }
    expect(page.locator('[data-result="weights_changed"]')).to_have_text("yes")
    expect(page.get_by_test_id("job-progress")).to_have_count(0)
    screenshot(page, "training-job-glance")
