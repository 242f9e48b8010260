"""`findap train --eval`: the job's before/after evaluation, asked for and shown as a table."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.table import Table

from app.client.connection import Connection

EVALUATION_ENDED = ("completed", "failed", "cancelled")


def evaluation_body(
    file_id: str | None, *, mode: str, judge: str | None, samples: int | None
) -> dict[str, Any]:
    """The job's `evaluation`: a dataset (ds_…) or an eval file id, mode, judge, samples."""
    source = "dataset_id" if file_id and file_id.startswith("ds_") else "file_id"
    body: dict[str, Any] = {source: file_id, "mode": mode}
    if judge is not None:
        body["judge"] = {"model": judge}
    if samples is not None:
        body["samples"] = samples
    return body


def is_local(value: str) -> bool:
    return Path(value).is_file()


def wait_for_after(
    connection: Connection, job: dict[str, Any], *, interval_s: float
) -> dict[str, Any]:
    """Poll the job until its after-evaluation has ended; the job as it is then."""
    while True:
        after = (job.get("evaluation") or {}).get("after")
        if after is None or after["status"] in EVALUATION_ENDED:
            return job
        time.sleep(interval_s)
        job = connection.get(f"/v1/training-jobs/{job['id']}")


def score_text(score: dict[str, Any] | None) -> str:
    if score is None:
        return "—"
    return f"{score['value']:.3f} [{score['low']:.2f}, {score['high']:.2f}]"


def delta_text(value: float | None) -> str:
    return "—" if value is None else f"{value:+.3f}"


def before_after_table(evaluation: dict[str, Any]) -> Table:
    """Per task (overall first): the base model's accuracy, the trained model's, the delta."""
    before, after, delta = evaluation["before"], evaluation["after"], evaluation["delta"]
    tasks = sorted({*(before or {}).get("by_task", {}), *(after or {}).get("by_task", {})})
    table = Table(title="before and after (accuracy, 95 % interval)", title_justify="left")
    for column in ("task", "before", "after", "delta"):
        table.add_column(column)

    def side(summary: dict[str, Any] | None, task: str | None) -> str:
        if summary is None:
            return "—"
        return score_text(summary["accuracy"] if task is None else summary["by_task"].get(task))

    overall = None if delta is None else delta["overall"]
    table.add_row("overall", side(before, None), side(after, None), delta_text(overall))
    for task in tasks:
        change = None if delta is None else delta["by_task"].get(task)
        table.add_row(task, side(before, task), side(after, task), delta_text(change))
    if before is not None and after is not None:
        table.caption = (
            f"before {before['id']} ({before['status']}), after {after['id']} ({after['status']})"
        )
    return table
