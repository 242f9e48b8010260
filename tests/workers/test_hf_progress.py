"""The hf engine reports every decoding step of a batched generate to the job's watcher: the
tokens it reports are the completion tokens it returns, every sequence is reported finished,
and the fraction climbs to 1 over a call split into several batches."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.tiny_model import build_tiny_model
from workers.engines.base import SamplingParams
from workers.engines.hf import HFEngine
from workers.engines.options import HFOptions
from workers.engines.progress import watched_by

CONVERSATIONS = [
    [{"role": "user", "content": "What is 2+2?"}],
    [{"role": "user", "content": "Define free cash flow."}],
    [{"role": "user", "content": "What is a bond?"}],
]


@dataclass
class Recorder:
    """A watcher that keeps every report."""

    reports: list[tuple[int, int, float]] = field(default_factory=list)

    def decoded(self, *, tokens: int, finished: int, fraction: float) -> None:
        self.reports.append((tokens, finished, fraction))


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.mark.parametrize("max_batch_sequences", [64, 2])
def test_each_decoding_step_is_reported_and_adds_up_to_the_call(
    tiny_model_dir: Path, max_batch_sequences: int
) -> None:
    engine = HFEngine(
        model_name="tiny",
        path=str(tiny_model_dir),
        options=HFOptions(max_batch_sequences=max_batch_sequences),
    )
    params = SamplingParams(n=2, temperature=1.0, max_tokens=12, seed=3)
    recorder = Recorder()
    with watched_by(recorder):
        generations = engine.generate(CONVERSATIONS, params)

    returned = sum(c.completion_tokens for g in generations for c in g.completions)
    assert sum(tokens for tokens, _, _ in recorder.reports) == returned
    assert sum(finished for _, finished, _ in recorder.reports) == 6  # 3 prompts x 2
    fractions = [fraction for _, _, fraction in recorder.reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    longest = max(c.completion_tokens for g in generations for c in g.completions)
    assert len(fractions) >= longest  # a report per decoding step
    # Seeded output is the same watched or not: the streamer only reads.
    assert engine.generate(CONVERSATIONS, params) == generations
