"""How many of the demo's answers run into max_tokens: the share cut at 256 vs 1024 tokens.

SmolLM2 answers the demo's 12 questions (app/examples/finance_mc.jsonl) with the demo's
sampling settings (6 samples, temperature 1.0, seed 0, the few-shot policy prompt), once per
limit; an answer is cut when the engine reports finish_reason "length".

    python -m benchmarks.truncation                    # 256 and 1024, minutes on CPU
    python -m benchmarks.truncation --max-tokens 64    # any limits
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
    params = SamplingParams(max_tokens=max_tokens, **DEMO_SAMPLING)  # type: ignore[arg-type]
    generations = engine.generate([build_policy_messages(q) for q in questions], params)
    finish = [c.finish_reason for g in generations for c in g.completions]
    return finish.count("length"), len(finish)


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
    for limit in max_tokens or [256, 1024]:
        since = time.time()
        cut, total = truncated_share(engine, questions, limit)
        print(
            f"max_tokens {limit}: {cut}/{total} answers truncated ({cut / total:.0%}), "
            f"{time.time() - since:.0f} s"
        )


if __name__ == "__main__":
    typer.run(main)
