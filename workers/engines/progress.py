"""Progress of a model call as it decodes. A job sets a watcher around its engine calls; an
engine that sees its decoding steps (hf, through a transformers streamer) reports each step to
it, one that does not (vllm's offline batch, an openai server) reports nothing, and the job
counts the call when it returns."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol


class GenerationWatcher(Protocol):
    """Whoever follows the current model call (workers.progress.ChunkProgress)."""

    def decoded(self, *, tokens: int, finished: int, fraction: float) -> None:
        """`tokens` more tokens were generated and `finished` more sequences ended since the
        last report; `fraction` (0 to 1) is how far the call's decoding has come."""


_watcher: ContextVar[GenerationWatcher | None] = ContextVar("generation_watcher", default=None)


@contextmanager
def watched_by(watcher: GenerationWatcher) -> Iterator[None]:
    """Engine calls made in this block report their decoding to `watcher`."""
    token = _watcher.set(watcher)
    try:
        yield
    finally:
        _watcher.reset(token)


def current_watcher() -> GenerationWatcher | None:
    return _watcher.get()


class StepCounter:
    """A transformers streamer (`generate(streamer=…)`, BaseStreamer's put/end) that counts
    every decoding step of a whole batch of `rows` sequences: tokens of sequences still
    running, sequences that just emitted an end token. The batch may be one part of a call
    (`rows_before` of `total_rows` sequences already done), so the fraction covers the call."""

    def __init__(
        self,
        watcher: GenerationWatcher,
        *,
        eos_token_ids: Sequence[int],
        max_new_tokens: int,
        rows: int,
        rows_before: int,
        total_rows: int,
    ) -> None:
        self.watcher = watcher
        self.eos_token_ids = set(eos_token_ids)
        self.max_new_tokens = max_new_tokens
        self.rows = rows
        self.rows_before = rows_before
        self.total_rows = total_rows
        self.finished: set[int] = set()
        self.steps = 0
        self.seen_prompt = False

    def put(self, value: Any) -> None:
        """One decoding step's tokens, one per sequence (the first call carries the prompts)."""
        if not self.seen_prompt:
            self.seen_prompt = True  # generate() streams the prompt ids first
            return
        tokens = value.reshape(-1).tolist()
        running = [row for row in range(len(tokens)) if row not in self.finished]
        ended = [row for row in running if tokens[row] in self.eos_token_ids]
        self.finished.update(ended)
        self.steps += 1
        # Decoding ends at max_new_tokens at the latest: steps over it bound how far it came.
        done = self.rows_before + self.rows * min(self.steps / self.max_new_tokens, 1.0)
        self.watcher.decoded(
            tokens=len(running), finished=len(ended), fraction=done / self.total_rows
        )

    def end(self) -> None:
        """Decoding stopped: sequences cut at max_new_tokens are finished too."""
        self.watcher.decoded(
            tokens=0,
            finished=self.rows - len(self.finished),
            fraction=(self.rows_before + self.rows) / self.total_rows,
        )
