"""Canned models that misbehave on request: slow, raising on a poisoned prompt, or killing their
own process on one (a segfaulting kernel, an OOM kill)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from tests.workers.canned_engines import CannedJudge, CannedPolicy
from workers.engines import registry
from workers.engines.base import Engine, Generation, Message, SamplingParams


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
        time.sleep(self.delay_s)
        return super().generate(conversations, params)


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
