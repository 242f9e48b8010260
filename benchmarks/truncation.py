"""How many of the demo's answers run into max_tokens: the share cut at 256 vs 1024 tokens.

SmolLM2 answers the demo's 12 questions (app/examples/finance_mc.jsonl) with the demo's
sampling settings (6 samples, temperature 1.0, seed 0, the few-shot policy prompt), one engine
call per question at the largest limit; an answer is cut when the engine reports finish_reason
"length". The smaller limits are read off the same answers: with the same seed and batch, a run
at a smaller limit samples exactly the first tokens of this one, so an answer is cut at N tokens
unless it stopped by itself within N. (One call per question, not one for all: in one batch a
single answer that rambles to 1024 tokens keeps all 60 others decoding; on 2 CPU cores the
batched run at 256 alone took 43 minutes.)

    python -m benchmarks.truncation                    # 256 and 1024, minutes on CPU
    python -m benchmarks.truncation --max-tokens 64 --max-tokens 512
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from app.kernel.config import get_settings
from workers.engines.base import Engine, SamplingParams
from workers.engines.registry import load_engine
from workers.prompts.policy import build_policy_messages

EXAMPLES = Path(__file__).resolve().parents[1] / "app" / "examples" / "finance_mc.jsonl"
DEMO_SAMPLING = {"n": 6, "temperature": 1.0, "seed": 0}


def truncated_share(engine: Engine, questions: list[str], max_tokens: int) -> tuple[int, int]:
    """Answers cut at max_tokens, and all answers, for the questions at the demo's settings."""
    cut, total = truncated_by_limit(engine, questions, [max_tokens])[max_tokens]
    return cut, total


def truncated_by_limit(
    engine: Engine, questions: list[str], limits: list[int]
) -> dict[int, tuple[int, int]]:
    """For each limit: answers cut at it, and all answers (sampled once, at the largest)."""
    params = SamplingParams(max_tokens=max(limits), **DEMO_SAMPLING)  # type: ignore[arg-type]
    ends: list[tuple[str, int]] = []
    for question in questions:
        (generation,) = engine.generate([build_policy_messages(question)], params)
        ends += [(c.finish_reason, c.completion_tokens) for c in generation.completions]
    return {
        limit: (sum(not (r == "stop" and n <= limit) for r, n in ends), len(ends))
        for limit in limits
    }


def main(
    max_tokens: Annotated[list[int] | None, typer.Option(help="Limits to compare.")] = None,
    model: Annotated[str, typer.Option(help="Registered policy model.")] = "smollm2-135m-instruct",
) -> None:
    """Print, for each limit, the share of the demo's answers cut at it."""
    settings = get_settings()
    questions = [json.loads(line)["question"] for line in EXAMPLES.read_text().splitlines()]
    engine = load_engine(
        engine="hf",
        model=model,
        models_dir=settings.models_dir,
        device=settings.device,
        options=settings.engine_options.get("hf", {}),
    )
    since = time.time()
    for limit, (cut, total) in truncated_by_limit(
        engine, questions, max_tokens or [256, 1024]
    ).items():
        print(f"max_tokens {limit}: {cut}/{total} answers truncated ({cut / total:.0%})")
    print(f"{time.time() - since:.0f} s")


if __name__ == "__main__":
    typer.run(main)
