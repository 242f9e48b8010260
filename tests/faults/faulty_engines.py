"""Canned models that misbehave on request: slow, raising on a poisoned prompt, or killing their
own process on one (a segfaulting kernel, an OOM kill)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from tests.workers.canned_engines import CannedJudge, CannedPolicy
from workers.engines import registry, tokens
from workers.engines.base import Engine, Generation, Message, SamplingParams
from workers.engines.progress import current_watcher


class FaultyPolicy(CannedPolicy):
    """CannedPolicy that sleeps delay_s per call, raises on prompts containing `poison`, and
    SIGKILLs its own process on prompts containing `kill_on`."""

    def __init__(self, *, delay_s: float = 0.0, poison: str = "", kill_on: str = "") -> None:
        super().__init__()
        self.delay_s = delay_s
        self.poison = poison
        self.kill_on = kill_on
        self.raised = 0

    def generate(
        self, conversations: list[list[Message]], params: SamplingParams
    ) -> list[Generation]:
        questions = [conversation[-1]["content"] for conversation in conversations]
        if self.kill_on and any(self.kill_on in question for question in questions):
            os.kill(os.getpid(), signal.SIGKILL)
        if self.poison and any(self.poison in question for question in questions):
            self.raised += 1
            raise RuntimeError(f"poisoned prompt: {self.poison}")
        decode_slowly(self.delay_s, rows=len(conversations) * params.n)
        return super().generate(conversations, params)


DECODING_STEPS = 10


def decode_slowly(delay_s: float, *, rows: int) -> None:
    """Take delay_s in steps, each reported to the job's watcher as a decoding step of `rows`
    sequences would be by the hf engine (12 tokens each, as CannedPolicy's answers count)."""
    watcher = current_watcher()
    tokens_per_step = 12 // DECODING_STEPS or 1
    for step in range(1, DECODING_STEPS + 1):
        time.sleep(delay_s / DECODING_STEPS)
        if watcher is not None:
            watcher.decoded(
                tokens=rows * tokens_per_step, finished=0, fraction=step / DECODING_STEPS
            )


class SlowJudge(CannedJudge):
    def __init__(self, *, delay_s: float = 0.0) -> None:
        super().__init__()
        self.delay_s = delay_s

    def generate(
        self, conversations: list[list[Message]], params: SamplingParams
    ) -> list[Generation]:
        time.sleep(self.delay_s)
        return super().generate(conversations, params)


def serve_from_registry(policy: Engine, judge: Engine) -> None:
    """The hf engine's names canned-policy and canned-judge load these (in this process)."""
    load_hf = registry.ENGINE_FACTORIES["hf"]

    def factory(model: str, models_dir: Path, device: str, options: Any) -> Engine:
        return {"canned-policy": policy, "canned-judge": judge}.get(model) or load_hf(
            model, models_dir, device, options
        )

    registry.ENGINE_FACTORIES["hf"] = factory
    registry.clear_engine_cache()
    # A worker that judges a reclaimed chunk before it ever loaded the policy counts the pairs'
    # tokens with the policy's tokenizer alone: the canned names have none on disk or hub.
    for name, engine in (("canned-policy", policy), ("canned-judge", judge)):
        tokens._counters[("hf", name)] = engine.count_tokens
