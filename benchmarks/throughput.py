"""Throughput of the whole service against the engine alone, on one fixed, seeded workload.

(a) engine: the same batched calls the worker makes (sample N questions x K answers, judge every
    answer, analyse every wrong one), straight on the loaded engines, no service around them;
(b) service: the same workload through the API -> Redis -> worker -> Postgres -> pairs download.
Prints tokens/s of both and their ratio, judge tokens per pair, and the share of unparseable
judge replies with and without structured output.

    python -m benchmarks.throughput                           # hf engine, SmolLM2, 16 x 4
    python -m benchmarks.throughput --engine vllm             # in .venv-vllm (or on a GPU)
    python -m benchmarks.throughput --smoke                   # tiny random model, seconds
Uses DATABASE_URL / REDIS_URL when set, else embedded services in --data-dir.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from redis import Redis
from rich.console import Console
from rich.table import Table
from rq import Worker
from rq.command import send_shutdown_command

from app.cli import offer_served_models
from app.kernel.config import Settings, get_settings
from app.launch import api_in_thread, backing_services, bearer
from app.services.api_keys import issue_key
from workers.engines.base import Engine, SamplingParams
from workers.engines.registry import load_engine
from workers.judging import AnswerToJudge, JudgeSettings, analyse_first_errors, judge_final_answers
from workers.prompts.fap import FAP_SCHEMA, build_fap_messages, parse_fap
from workers.prompts.policy import build_policy_messages
from workers.worker import run_worker

EXAMPLES = Path(__file__).resolve().parents[1] / "app" / "examples" / "finance_mc.jsonl"
console = Console()


@dataclass(frozen=True)
class Run:
    seconds: float
    policy_tokens: int
    judge_tokens: int
    pairs: int = 0
    judge_unparseable: int = 0
    judge_replies: int = 0

    @property
    def tokens_per_s(self) -> float:
        return (self.policy_tokens + self.judge_tokens) / self.seconds


def workload(questions: int) -> list[dict[str, Any]]:
    """N questions cycled from the shipped examples (each made distinct by a case number)."""
    base = [json.loads(line) for line in EXAMPLES.read_text().splitlines() if line.strip()]
    return [
        {
            **base[i % len(base)],
            "id": f"q{i}",
            "question": f"{base[i % len(base)]['question']}"
            + ("" if i < len(base) else f"\n(Case {i // len(base)})"),
        }
        for i in range(questions)
    ]


def warm_up(engine: Engine) -> None:
    """Same start for both runs: grammar compiled, no prompt prefixes cached from the last run."""
    engine.generate(
        [build_policy_messages("warm up")],
        SamplingParams(n=1, max_tokens=8, json_schema=FAP_SCHEMA),
    )
    reset = getattr(engine, "reset_prefix_cache", None)
    if reset is not None:
        reset()


def run_engine(
    policy: Engine,
    judge: Engine,
    prompts: list[dict[str, Any]],
    options: dict[str, Any],
    retries: int,
) -> tuple[Run, list[AnswerToJudge]]:
    """The lower bound: the worker's model calls, back to back, nothing else."""
    p, j = options["policy"], options["judge"]
    started = time.perf_counter()
    generations = policy.generate(
        [build_policy_messages(item["question"]) for item in prompts],
        SamplingParams(
            n=p["samples_per_prompt"],
            temperature=p["temperature"],
            max_tokens=p["max_tokens"],
            seed=p["seed"],
        ),
    )
    answers = [
        AnswerToJudge(index * 1000 + k, item["question"], item["reference_answer"], c.text)
        for index, (item, generation) in enumerate(zip(prompts, generations, strict=True))
        for k, c in enumerate(generation.completions)
    ]
    settings = JudgeSettings(
        max_tokens=j["max_tokens"], temperature=0.0, retries=retries, seed=p["seed"]
    )
    verdicts = judge_final_answers(judge, answers, settings)
    wrong = [a for a, v in zip(answers, verdicts, strict=True) if v.result.verdict == "wrong"]
    analyses = analyse_first_errors(judge, wrong, settings, prompt_version="scp-steps-v1")
    seconds = time.perf_counter() - started
    run = Run(
        seconds=seconds,
        policy_tokens=sum(c.completion_tokens for g in generations for c in g.completions),
        judge_tokens=sum(v.completion_tokens for v in verdicts)
        + sum(a.completion_tokens for a in analyses),
        judge_unparseable=sum(v.result.outcome == "unparseable" for v in verdicts),
        judge_replies=len(verdicts),
    )
    return run, answers


def unconstrained_unparseable(
    judge: Engine, answers: list[AnswerToJudge], max_tokens: int
) -> tuple[int, int]:
    """How many FAP replies fail to parse when the judge is not held to the schema."""
    conversations = [
        build_fap_messages(item.question, item.reference_answer, item.answer) for item in answers
    ]
    replies = judge.generate(
        conversations, SamplingParams(n=1, temperature=0.0, max_tokens=max_tokens)
    )
    failed = sum(parse_fap(r.completions[0].text).outcome == "unparseable" for r in replies)
    return failed, len(replies)


def run_service(
    settings: Settings,
    prompts: list[dict[str, Any]],
    options: dict[str, Any],
    port: int,
    collect: Callable[[str, str, list[dict[str, Any]], dict[str, Any]], Any] | None = None,
) -> Any:
    """The same workload through the API, the queue, a running worker, Postgres, the download
    (`collect`: what the client does against the running service; default a batch)."""
    collect = collect or submit_and_collect
    policy_ref = f"{options['policy']['engine']}:{options['policy']['model']}"
    judge_ref = f"{options['judge']['engine']}:{options['judge']['model']}"
    # The rule judge runs in the sampling worker: no judge model to serve.
    judges = [] if options["judge"]["engine"] == "rule" else [judge_ref]
    # The benchmark is the operator: the models it serves are offered to its batches.
    serving = offer_served_models(
        settings.model_copy(update={"policies": [policy_ref], "judges": judges})
    )
    worker_name = f"bench-{uuid.uuid4().hex[:8]}"
    outcome: dict[str, Any] = {}
    with (
        backing_services(serving, reclaim_running=False) as bound,
        api_in_thread(bound, "127.0.0.1", port) as url,
    ):
        redis = Redis.from_url(bound.require_redis_url())
        key = issue_key(bound, project="benchmarks", name="throughput")

        def client() -> None:
            try:
                while not Worker.find_by_key(
                    Worker.redis_worker_namespace_prefix + worker_name, connection=redis
                ):
                    time.sleep(0.05)  # time the service, not the worker's start
                outcome["run"] = collect(url, key, prompts, options)
            except BaseException as error:
                outcome["error"] = error
            finally:
                send_shutdown_command(redis, worker_name)

        thread = threading.Thread(target=client, name="bench-client")
        thread.start()
        run_worker(bound, name=worker_name)  # stays up like a production worker
        thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["run"]


def submit_and_collect(
    url: str, key: str, prompts: list[dict[str, Any]], options: dict[str, Any]
) -> Run:
    """POST the batch, poll until it ends, stream the pairs down; timed from POST to last byte."""
    with httpx.Client(base_url=url, timeout=600, headers=bearer(key)) as client:
        started = time.perf_counter()
        response = client.post("/v1/batches", json={"prompts": prompts, **options})
        response.raise_for_status()
        batch_id = response.json()["id"]
        while (batch := client.get(f"/v1/batches/{batch_id}").json())["status"] not in (
            "completed",
            "failed",
            "cancelled",
        ):
            time.sleep(0.1)
        with client.stream("GET", f"/v1/batches/{batch_id}/pairs") as pairs:
            pair_count = sum(1 for line in pairs.iter_lines() if line)
        seconds = time.perf_counter() - started
    if batch["status"] != "completed":
        raise RuntimeError(f"batch ended {batch['status']}: {batch['error']}")
    return Run(
        seconds=seconds,
        policy_tokens=batch["usage"]["policy_completion_tokens"],
        judge_tokens=batch["usage"]["judge_completion_tokens"],
        pairs=pair_count,
        judge_unparseable=batch["verdict_counts"]["fap"]["unparseable"],
        judge_replies=sum(batch["verdict_counts"]["fap"].values()),
    )


def main(
    engine: Annotated[str, typer.Option(help="hf or vllm (policy and judge).")] = "hf",
    model: Annotated[str, typer.Option(help="Policy and judge model.")] = "smollm2-135m-instruct",
    questions: Annotated[int, typer.Option(help="N questions.")] = 16,
    samples: Annotated[int, typer.Option(help="K answers per question.")] = 4,
    max_tokens: Annotated[int, typer.Option(help="Policy max_tokens.")] = 64,
    judge_max_tokens: Annotated[int, typer.Option(help="Judge max_tokens.")] = 128,
    seed: int = 0,
    smoke: Annotated[bool, typer.Option(help="Tiny random model and workload (CI).")] = False,
    port: int = 8798,
    data_dir: Path = Path("data/bench"),
) -> None:
    settings = get_settings()
    if smoke:
        from tests.tiny_model import build_tiny_model

        model = str(build_tiny_model(Path(tempfile.mkdtemp()) / "tiny"))
        questions, samples, max_tokens, judge_max_tokens = 4, 2, 16, 48
    settings = settings.model_copy(update={"data_dir": data_dir, "chunk_size": max(questions, 1)})
    options = {
        "policy": {
            "engine": engine,
            "model": model,
            "samples_per_prompt": samples,
            "temperature": 0.8,
            "max_tokens": max_tokens,
            "seed": seed,
        },
        "judge": {"engine": engine, "model": model, "max_tokens": judge_max_tokens},
    }
    prompts = workload(questions)
    loaded = load_engine(
        engine=engine,
        model=model,
        models_dir=settings.models_dir,
        device=settings.device,
        options=settings.engine_options.get(engine, {}),
    )
    warm_up(loaded)
    raw, answers = run_engine(loaded, loaded, prompts, options, settings.judge_retries)
    warm_up(loaded)
    service = run_service(settings, prompts, options, port)
    free_bad, free_total = unconstrained_unparseable(loaded, answers, judge_max_tokens)

    table = Table(title=f"throughput, {engine} engine, {questions} questions x {samples} samples")
    for column in ("run", "seconds", "policy tok", "judge tok", "tok/s"):
        table.add_column(column, justify="right")
    for name, run in (("engine alone", raw), ("whole service", service)):
        table.add_row(
            name,
            f"{run.seconds:.1f}",
            str(run.policy_tokens),
            str(run.judge_tokens),
            f"{run.tokens_per_s:.1f}",
        )
    console.print(table)
    print(f"ratio service/engine (tok/s): {service.tokens_per_s / raw.tokens_per_s:.3f}")
    print(
        f"pairs: {service.pairs}; judge tokens per pair: "
        + (f"{service.judge_tokens / service.pairs:.0f}" if service.pairs else "n/a (no pairs)")
    )
    constrained = f"{service.judge_unparseable}/{service.judge_replies}"
    print(f"unparseable FAP replies, structured output: {constrained}")
    print(f"unparseable FAP replies, free text:        {free_bad}/{free_total}")


if __name__ == "__main__":
    typer.run(main)
