"""What one run of a chunk's stage did, for /metrics: model calls, judge replies, how long it
took; gathered as the stage runs and written to Redis in one round trip when it ends."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from app.kernel import metrics_store as store
from app.kernel.metrics_store import Figures, MetricsStore
from app.kernel.models.statuses import ChunkStage, SignalKind
from app.kernel.queue import ModelRef
from workers.engines.base import Generation
from workers.judging import Judged

COMPLETED_OUTCOMES = ("succeeded", "sampled")
"""Stage outcomes whose duration the latency histogram takes (not lost or failed runs)."""


class StageMeter:
    """The figures of one stage run; a meter that is never recorded costs nothing else."""

    def __init__(self) -> None:
        self.figures = Figures()
        self.started = time.monotonic()

    def sampled(self, model: ModelRef, generations: Sequence[Generation], *, since: float) -> None:
        """A policy call that began at wall-clock time `since` and just returned."""
        prompt = sum(generation.prompt_tokens for generation in generations)
        completion = sum(
            item.completion_tokens for generation in generations for item in generation.completions
        )
        self.tokens(model, "policy", prompt, completion, since=since)

    def judged(
        self, model: ModelRef, kind: SignalKind, judged: Sequence[Judged[Any]], *, since: float
    ) -> None:
        """A judge's verdicts (with their retries) from calls that began at `since`."""
        labels = (model.engine, model.model, kind.value)
        for item in judged:
            self.figures.count(store.VERDICTS, (*labels, item.result.outcome))
        replies = sum(item.attempts for item in judged)
        # Every reply before an item's last was retried because it did not parse.
        unparseable = sum(
            max(item.attempts - 1, 0) + (item.result.outcome == "unparseable") for item in judged
        )
        now = time.time()
        for series, amount in (
            (store.JUDGE_REPLIES, replies),
            (store.JUDGE_UNPARSEABLE, unparseable),
        ):
            self.figures.count(series, labels, amount)
            self.figures.count_recent(series, labels, amount, start=now, end=now)
        prompt = sum(item.prompt_tokens for item in judged)
        completion = sum(item.completion_tokens for item in judged)
        self.tokens(model, "judge", prompt, completion, since=since)

    def tokens(
        self, model: ModelRef, role: str, prompt: int, completion: int, *, since: float
    ) -> None:
        if not prompt and not completion:
            return
        labels = (model.engine, model.model, role)
        self.figures.count(store.TOKENS, (*labels, "prompt"), prompt)
        self.figures.count(store.TOKENS, (*labels, "completion"), completion)
        self.figures.count_recent(
            store.GENERATED_TOKENS, labels, completion, start=since, end=time.time()
        )

    def record(
        self, metrics: MetricsStore, stage: ChunkStage, model: ModelRef, outcome: str
    ) -> None:
        """End the run: count it, time it if it completed the stage, write everything."""
        labels = (stage.value, model.engine, model.model)
        self.figures.count(store.CHUNK_STAGE_RUNS, (*labels, outcome))
        if outcome in COMPLETED_OUTCOMES:
            seconds = time.monotonic() - self.started
            self.figures.observe(store.CHUNK_STAGE_SECONDS, labels, seconds)
        metrics.add(self.figures)
