"""What a running trainer tells the service, without slowing its steps down.

Step metrics are buffered and written by a background thread every `flush_interval_s`; the same
thread polls the job's cancel flag. The trainer callback only appends to a list and reads a flag.
Step times also go to Redis for /metrics, in the same flushes.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from app.kernel import metrics_store as store
from app.kernel.context import ProcessContext
from app.kernel.db.base import utcnow
from app.kernel.metrics_store import Figures, MetricsStore
from training import job_store

log = logging.getLogger(__name__)


class JobReporter:
    """Buffers a job's events for the database and watches for a cancel request."""

    def __init__(
        self,
        context: ProcessContext,
        job_id: str,
        *,
        writes: bool,
        flush_interval_s: float = 0.5,
    ) -> None:
        self.context = context
        self.job_id = job_id
        self.writes = writes
        """Only one process of a distributed job (rank 0) writes."""
        self.metrics: MetricsStore | None = context.metrics if writes else None
        """Where step times go for /metrics (the process's Redis)."""
        self._figures = Figures()
        self.cancel = threading.Event()
        self._interval = flush_interval_s
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-reporter", daemon=True)

    def __enter__(self) -> JobReporter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.flush()

    def event(
        self,
        kind: str,
        *,
        step: int | None = None,
        metrics: dict[str, float] | None = None,
        message: str | None = None,
    ) -> None:
        if not self.writes:
            return
        event = {
            "kind": kind,
            "step": step,
            "metrics": metrics,
            "message": message,
            "created_at": utcnow(),
        }
        with self._lock:
            self._pending.append(event)

    def step_time(self, seconds: float) -> None:
        """One optimizer step took this long."""
        if self.metrics is None:
            return
        with self._lock:
            self._figures.observe(store.TRAINING_STEP_SECONDS, (), seconds)
            self._figures.set_latest(store.TRAINING_LAST_STEP, (self.job_id,), seconds)

    def checkpoint(
        self, *, step: int, loss: float | None, path: Path, kept_steps: list[int]
    ) -> None:
        if not self.writes:
            return
        self.flush()
        job_store.add_checkpoint(
            self.context, self.job_id, step=step, loss=loss, path=str(path), kept_steps=kept_steps
        )

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
            figures, self._figures = self._figures, Figures()
        if self.metrics is not None:
            self.metrics.add(figures)
        job_store.add_events(self.context, self.job_id, pending)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.flush()
                if job_store.cancel_requested(self.context, self.job_id):
                    self.cancel.set()
            except Exception:  # a database hiccup must not kill the training run
                log.exception("reporting training job %s failed; will retry", self.job_id)


def _numbers(logs: dict[str, Any]) -> dict[str, float]:
    return {key: float(value) for key, value in logs.items() if isinstance(value, int | float)}


def _any_process_cancelled(cancelled: bool) -> bool:
    """All processes of a distributed job stop at the same step: the flag is reduced over them."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return cancelled
    import torch
    from accelerate import PartialState

    flag = torch.tensor([int(cancelled)], device=PartialState().device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


class ReportingCallback(TrainerCallback):  # type: ignore[misc]
    """Per-step metrics, evaluations and checkpoints to the reporter; stops on cancel."""

    def __init__(self, reporter: JobReporter) -> None:
        self.reporter = reporter
        self.step_started: float | None = None
        self.last_loss: float | None = None
        self.summary: dict[str, float] = {}
        self.cancelled = False

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        numbers = _numbers(logs or {})
        if "train_runtime" in numbers:
            self.summary = numbers
            return
        if "loss" in numbers:
            self.last_loss = numbers["loss"]
            self.reporter.event("metrics", step=state.global_step, metrics=numbers)
        elif any(key.startswith("eval_") for key in numbers):
            self.reporter.event("eval", step=state.global_step, metrics=numbers)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.step_started = time.monotonic()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.step_started is not None:
            self.reporter.step_time(time.monotonic() - self.step_started)
        if _any_process_cancelled(self.reporter.cancel.is_set()):
            self.cancelled = True
            control.should_training_stop = True
            control.should_save = True

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        output_dir = Path(args.output_dir)
        path = output_dir / f"checkpoint-{state.global_step}"
        self.reporter.checkpoint(
            step=state.global_step,
            loss=self.last_loss,
            path=path,
            kept_steps=checkpoint_steps(output_dir),
        )


def checkpoint_steps(output_dir: Path) -> list[int]:
    """The steps of the checkpoints on disk (the trainer's rotation deletes old ones)."""
    return [
        int(folder.name.removeprefix("checkpoint-"))
        for folder in output_dir.glob("checkpoint-*")
        if folder.name.removeprefix("checkpoint-").isdigit()
    ]
