"""Evaluation throughput through the service against the engine alone, on the same questions.

(a) engine: one batched greedy call over every question (the policy's step-by-step prompt),
    then the rule verifier on every answer, straight on the loaded engine;
(b) service: POST /v1/evaluations (rule judge), the API -> Redis -> worker -> Postgres, polled
    until it ends, and its per-question results downloaded as JSONL.
Prints questions/s and generated tokens/s of both, their ratio, and both accuracies (greedy
decoding: the same answers, so the same accuracy).

    python -m benchmarks.evaluation                      # hf engine, SmolLM2, 32 questions
    python -m benchmarks.evaluation --smoke              # tiny random model, seconds
Uses DATABASE_URL / REDIS_URL when set, else embedded services in --data-dir.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from app.kernel.config import get_settings
from app.kernel.registered_models import resolve_model_path
from app.launch import bearer
from benchmarks.throughput import run_service, warm_up, workload
from workers.engines.base import Engine, SamplingParams
from workers.engines.registry import load_engine
from workers.prompts.policy import build_policy_messages
from workers.rule_judge import judge_by_rule

console = Console()


@dataclass(frozen=True)
class EvalRun:
    seconds: float
    questions: int
    completion_tokens: int
    correct: int

    @property
    def questions_per_s(self) -> float:
        return self.questions / self.seconds

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.seconds


def run_engine(engine: Engine, prompts: list[dict[str, Any]], max_tokens: int) -> EvalRun:
    """The lower bound: one greedy batched call and the rule verifier, nothing else."""
    started = time.perf_counter()
    generations = engine.generate(
        [build_policy_messages(item["question"]) for item in prompts],
        SamplingParams(n=1, temperature=0.0, max_tokens=max_tokens),
    )
    correct = 0
    for item, generation in zip(prompts, generations, strict=True):
        completion = generation.completions[0]
        if completion.finish_reason != "length":
            correct += judge_by_rule(completion.text, item["reference_answer"]).verdict == "correct"
    return EvalRun(
        seconds=time.perf_counter() - started,
        questions=len(prompts),
        completion_tokens=sum(g.completions[0].completion_tokens for g in generations),
        correct=correct,
    )


def poll(client: httpx.Client, evaluation_id: str) -> dict[str, Any]:
    """The evaluation; an answer other than 200 is said and asked again (a busy server's 503),
    up to ten times in a row."""
    for _ in range(10):
        response = client.get(f"/v1/evaluations/{evaluation_id}")
        if response.status_code == 200:
            found: dict[str, Any] = response.json()
            return found
        console.print(f"poll: {response.status_code} {response.text[:300]}")
        time.sleep(1)
    response.raise_for_status()
    raise RuntimeError(f"poll: {response.status_code} {response.text[:300]}")


def evaluate_and_collect(
    url: str, key: str, prompts: list[dict[str, Any]], options: dict[str, Any]
) -> EvalRun:
    """POST the evaluation, poll until it ends, stream the results down; timed from POST to
    the last byte."""
    with httpx.Client(base_url=url, timeout=600, headers=bearer(key)) as client:
        started = time.perf_counter()
        response = client.post(
            "/v1/evaluations",
            json={
                "model": options["policy"]["model"],
                "engine": options["policy"]["engine"],
                "prompts": prompts,
                "max_tokens": options["policy"]["max_tokens"],
                "judge": {"model": "rule"},
                "chunk_size": len(prompts),
            },
        )
        response.raise_for_status()
        evaluation_id = response.json()["id"]
        while (evaluation := poll(client, evaluation_id))["status"] not in (
            "completed",
            "failed",
            "cancelled",
        ):
            time.sleep(0.1)
        with client.stream(
            "GET", f"/v1/evaluations/{evaluation_id}/results", params={"format": "jsonl"}
        ) as results:
            rows = sum(1 for line in results.iter_lines() if line)
        seconds = time.perf_counter() - started
    if evaluation["status"] != "completed" or rows != len(prompts):
        raise RuntimeError(f"evaluation ended {evaluation['status']} with {rows} result rows")
    accuracy = evaluation["accuracy"]
    return EvalRun(
        seconds=seconds,
        questions=evaluation["questions"],
        completion_tokens=evaluation["usage"]["completion_tokens"],
        correct=round(accuracy["value"] * accuracy["n"]),
    )


def main(
    engine: Annotated[str, typer.Option(help="hf or vllm.")] = "hf",
    model: Annotated[str, typer.Option(help="The model evaluated.")] = "smollm2-135m-instruct",
    questions: Annotated[int, typer.Option(help="Questions.")] = 32,
    max_tokens: Annotated[int, typer.Option(help="Tokens per answer.")] = 64,
    smoke: Annotated[bool, typer.Option(help="Tiny random model and workload (CI).")] = False,
    port: int = 8796,
    data_dir: Path = Path("data/bench"),
) -> None:
    settings = get_settings()
    if smoke:
        from tests.tiny_model import build_tiny_model

        model = str(build_tiny_model(Path(tempfile.mkdtemp()) / "tiny"))
        questions, max_tokens = 4, 16
    # One chunk (chunk_size below), so the service makes the one engine call the engine run
    # makes; MIN_CHUNK_SIZE may not refuse it for a workload smaller than itself (the smoke).
    one_chunk = max(questions, 1)
    settings = settings.model_copy(
        update={
            "data_dir": data_dir,
            "chunk_size": one_chunk,
            "min_chunk_size": min(settings.min_chunk_size, one_chunk),
        }
    )
    options = {"policy": {"engine": engine, "model": model, "max_tokens": max_tokens}}
    prompts = workload(questions)
    # Loaded where the worker finds it (the same process): the service's worker has the model
    # loaded, as a running worker keeps it, and both runs use the same weights.
    loaded = load_engine(
        engine=engine,
        model=resolve_model_path(model, models_dir=settings.models_dir),
        models_dir=settings.models_dir,
        device=settings.device,
        options=settings.engine_options.get(engine, {}),
    )
    warm_up(loaded)
    raw = run_engine(loaded, prompts, max_tokens)
    console.print(f"engine alone: {raw.seconds:.1f} s; now through the service")
    warm_up(loaded)
    options["judge"] = {"engine": "rule", "model": "rule"}
    service: EvalRun = run_service(settings, prompts, options, port, evaluate_and_collect)

    table = Table(title=f"evaluation, {engine} engine, {questions} questions, greedy, cot")
    for column in ("run", "seconds", "questions/s", "completion tok", "tok/s", "correct"):
        table.add_column(column, justify="right")
    for name, run in (("engine alone", raw), ("whole service", service)):
        table.add_row(
            name,
            f"{run.seconds:.2f}",
            f"{run.questions_per_s:.2f}",
            str(run.completion_tokens),
            f"{run.tokens_per_s:.1f}",
            f"{run.correct}/{run.questions}",
        )
    console.print(table)
    print(
        f"ratio service/engine (questions/s): {service.questions_per_s / raw.questions_per_s:.3f}"
    )
    print(f"ratio service/engine (tok/s): {service.tokens_per_s / raw.tokens_per_s:.3f}")


if __name__ == "__main__":
    typer.run(main)
