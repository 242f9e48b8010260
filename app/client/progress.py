"""Following a batch or a training job until it ends: a live rich bar on a terminal, plain lines
elsewhere (CI logs, pipes), from polling the API."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from app.client.connection import Connection
from app.client.output import chunks_done

BATCH_ENDED = frozenset({"completed", "failed", "cancelled"})
JOB_ENDED = frozenset({"succeeded", "failed", "cancelled"})
METRIC_NAMES = {
    "loss": "loss",
    "eval_loss": "eval loss",
    "rewards/margins": "margin",
    "rewards/accuracies": "accuracy",
    "learning_rate": "lr",
}
"""TRL's names of the metrics shown, in this order, with the label each gets."""


@dataclass(frozen=True)
class BatchSnapshot:
    """What one poll of a batch tells about its progress."""

    status: str
    chunks_done: int
    chunks_total: int
    samples: int
    pairs: int
    tokens: int
    """Generated tokens (policy and judge), counting those of the running chunks."""
    at: float
    chunks_fraction: float = 0.0
    """How far the running chunks have come (each 0 to 1), as their workers report it."""

    @classmethod
    def of(cls, batch: dict[str, Any], at: float) -> BatchSnapshot:
        usage = batch["usage"]
        running = batch.get("progress") or {}
        return cls(
            status=batch["status"],
            chunks_done=chunks_done(batch),
            chunks_total=batch["chunk_counts"]["total"],
            samples=batch["sample_count"] + running.get("samples_generated", 0),
            pairs=batch["pair_counts"]["total"],
            tokens=usage.get("policy_completion_tokens", 0)
            + usage.get("judge_completion_tokens", 0)
            + running.get("tokens_generated", 0),
            at=at,
            chunks_fraction=running.get("chunks_fraction", 0.0),
        )

    @property
    def work_done(self) -> float:
        """Chunks' worth of work done: chunks ended plus how far the running ones came."""
        return self.chunks_done + self.chunks_fraction

    @property
    def percent(self) -> int:
        return round(100 * self.work_done / self.chunks_total) if self.chunks_total else 0


def tokens_per_s(first: BatchSnapshot, now: BatchSnapshot) -> float:
    """Generated tokens (policy and judge) per second since the first poll."""
    elapsed = now.at - first.at
    return (now.tokens - first.tokens) / elapsed if elapsed > 0 else 0.0


def eta_s(first: BatchSnapshot, now: BatchSnapshot) -> float | None:
    """Seconds left at the pace work got done since the first poll (chunks, and steps inside
    the running ones); None before any has."""
    done = now.work_done - first.work_done
    if done <= 0:
        return None
    return (now.at - first.at) / done * (now.chunks_total - now.work_done)


def clock(seconds: float | None) -> str:
    """Seconds as h:mm:ss, or `?` when unknown."""
    if seconds is None:
        return "?"
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def batch_line(first: BatchSnapshot, now: BatchSnapshot) -> str:
    """The progress of a batch as one line of text."""
    return (
        f"{now.status}: chunks {now.chunks_done}/{now.chunks_total}, {now.percent}% done, "
        f"samples {now.samples}, pairs {now.pairs}, {tokens_per_s(first, now):.0f} tokens/s, "
        f"ETA {clock(eta_s(first, now))}"
    )


def new_notes(batch: dict[str, Any], shown: set[str]) -> list[str]:
    """The batch's notes not shown yet (why it waits, why a kind of pair will be missing)."""
    fresh = [note for note in batch.get("notes", []) if note not in shown]
    shown.update(fresh)
    return fresh


class BatchDisplay:
    """A batch's progress: a live bar on a terminal, else a line each time a count changes."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("chunks · {task.fields[detail]}"),
            console=console,
            disable=not console.is_terminal,
        )
        self.task = self.bar.add_task("", total=None, detail="")
        self.shown: tuple[object, ...] = ()
        self.notes: set[str] = set()

    def __enter__(self) -> BatchDisplay:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def show_notes(self, batch: dict[str, Any]) -> None:
        """Each note once, as it appears: e.g. that no worker serves the batch's model."""
        for note in new_notes(batch, self.notes):
            self.bar.console.print(f"note: {note}", soft_wrap=True)

    def show(self, first: BatchSnapshot, now: BatchSnapshot) -> None:
        if self.console.is_terminal:
            self.bar.update(
                self.task,
                description=now.status,
                completed=now.work_done,
                total=now.chunks_total or None,
                detail=f"{now.percent}% · {now.samples} samples · {now.pairs} pairs · "
                f"{tokens_per_s(first, now):.0f} tokens/s · ETA {clock(eta_s(first, now))}",
            )
            return
        # A line when a count moves, or the work inside the chunks by a tenth of a chunk.
        step = round(now.chunks_fraction * 10)
        counts = (now.status, now.chunks_done, now.chunks_total, now.samples, now.pairs, step)
        if counts != self.shown:
            self.console.print(batch_line(first, now), soft_wrap=True)
            self.shown = counts


def watch_batch(
    connection: Connection, batch_id: str, *, interval_s: float, console: Console
) -> dict[str, Any]:
    """Poll the batch until it ends, showing its progress; returns its last state."""
    first: BatchSnapshot | None = None
    with BatchDisplay(console) as display:
        while True:
            batch: dict[str, Any] = connection.get(f"/v1/batches/{batch_id}")
            now = BatchSnapshot.of(batch, time.monotonic())
            first = first or now
            display.show_notes(batch)
            display.show(first, now)
            if now.status in BATCH_ENDED:
                return batch
            time.sleep(interval_s)


def metrics_text(metrics: dict[str, Any]) -> str:
    """The metrics worth a glance (loss; for DPO reward margin and accuracy), on one line."""
    shown = []
    for name, label in METRIC_NAMES.items():
        value = metrics.get(name)
        if isinstance(value, int | float):
            shown.append(
                f"{label} {value:.3g}" if name == "learning_rate" else f"{label} {value:.4f}"
            )
    return "  ".join(shown)


def event_line(event: dict[str, Any], max_steps: int | None) -> str:
    """One training event as a line: a step's metrics, an evaluation, a checkpoint, a status."""
    kind, step = event["kind"], event["step"]
    if kind == "metrics":
        of = f"/{max_steps}" if max_steps else ""
        return f"step {step}{of}  {metrics_text(event['metrics'] or {})}"
    if kind == "eval":
        return f"eval at step {step}  {metrics_text(event['metrics'] or {})}"
    if kind == "checkpoint":
        return f"checkpoint at step {step}: {event['message']}"
    return f"status: {event['message']}"


class EventReader:
    """Reads a job's events oldest first, each once, following the pagination."""

    def __init__(self, connection: Connection, job_id: str) -> None:
        self.connection = connection
        self.job_id = job_id
        self.after: int | None = None

    def new_events(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            page = self.connection.get(
                f"/v1/training-jobs/{self.job_id}/events", after=self.after, limit=1000
            )
            found += page["data"]
            if page["last_id"] is not None:
                self.after = page["last_id"]
            if not page["has_more"]:
                return found


def watch_training(
    connection: Connection, job_id: str, *, interval_s: float, console: Console
) -> dict[str, Any]:
    """Poll the job and its events until it ends, showing steps and losses; its last state."""
    job = connection.get(f"/v1/training-jobs/{job_id}")
    max_steps = job["hyperparameters"].get("max_steps")
    reader = EventReader(connection, job_id)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps · {task.fields[detail]}"),
    )
    with Progress(*columns, console=console, disable=not console.is_terminal) as bar:
        task = bar.add_task(job["status"], total=max_steps, detail="")
        while True:
            ended = job["status"] in JOB_ENDED
            # Events first, then the job: a job seen ended has all of its events stored.
            for event in reader.new_events():
                if event["kind"] == "metrics" and console.is_terminal:
                    detail = metrics_text(event["metrics"] or {})
                    bar.update(task, completed=event["step"], detail=detail)
                else:
                    bar.console.print(event_line(event, max_steps), soft_wrap=True)
            bar.update(task, description=job["status"])
            if ended:
                return dict(job)
            time.sleep(interval_s)
            job = connection.get(f"/v1/training-jobs/{job_id}")
