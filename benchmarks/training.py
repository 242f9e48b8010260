"""Training speed through the service against TRL alone, on a tiny model and fixed data.

(a) service: the files uploaded over the API, an sft and a dpo job created there, each run by the
    train worker in its own trainer process (database, reporting callback, checkpoint rows);
(b) TRL: the same rows, tokenized by the same functions, on a trainer built with the same
    arguments and seed, in this process, with no callback, database or queue.
Both speeds come from TRL's own `train_runtime`; tokens are TRL's `num_tokens` at the last step.
Prints steps/s and tokens/s of both and their ratio (medians over the repeats), then the service's
cost around the training loop (trainer process start, imports, data and model load, save).

    python -m benchmarks.training             # hidden 256, 30 steps per job, 3 repeats
    python -m benchmarks.training --smoke     # the test model, 3 steps, 1 repeat
Uses DATABASE_URL / REDIS_URL when set, else embedded services in --data-dir.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from app.kernel.config import Settings, get_settings
from app.kernel.training_options import Hyperparameters
from app.launch import api_in_thread, backing_services, bearer
from app.schemas.training_job import TrainingJobCreate
from app.services.api_keys import issue_key
from training.supervisor import run_train_worker

METHODS = ("sft", "dpo")
BENCH_MODEL = "bench-tiny"
"""The tiny model's name among the configured models (BASE_MODELS) of the benchmark's service."""
console = Console()

COMPANIES = ("Acme", "Borealis", "Cobalt", "Dunmore", "Everline", "Fairport", "Granite", "Halcyon")


@dataclass(frozen=True)
class Run:
    """One training run as TRL measured it."""

    steps: int
    train_seconds: float
    tokens: int
    wall_seconds: float
    trainer_seconds: float | None = None
    """service only: the trainer process from reading the job to its result (training.run)."""

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.train_seconds

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.train_seconds


# --- data ---------------------------------------------------------------------------------------


def finance_questions(count: int) -> list[tuple[str, str, str]]:
    """Deterministic (question, right answer, wrong answer) triples: ratios worked out in steps."""
    items = []
    for i in range(count):
        company = f"{COMPANIES[i % len(COMPANIES)]} {i // len(COMPANIES) + 1}"
        a, b = 120 + 7 * i, 35 + (11 * i) % 60
        kind = i % 4
        if kind == 0:
            question = (
                f"{company} had revenue of ${a} million and operating costs of ${b} million. "
                "What is its operating margin?"
            )
            right = f"Operating income is {a} - {b} = {a - b}; {a - b}/{a} = {(a - b) / a:.1%}."
            wrong = f"The margin is {b}/{a} = {b / a:.1%}."
        elif kind == 1:
            question = (
                f"{company} trades at ${a} a share and earned ${b / 10:.2f} per share. "
                "What is its P/E ratio?"
            )
            right = f"P/E is price over earnings: {a}/{b / 10:.2f} = {a / (b / 10):.1f}."
            wrong = f"P/E is earnings over price: {b / 10:.2f}/{a} = {(b / 10) / a:.3f}."
        elif kind == 2:
            question = (
                f"{company} grew revenue from ${a} million to ${a + b} million. "
                "What was the growth rate?"
            )
            right = f"Growth is ({a + b} - {a})/{a} = {b / a:.1%}."
            wrong = f"Growth is {b}/{a + b} = {b / (a + b):.1%}."
        else:
            question = (
                f"{company} has current assets of ${a} million and current liabilities of "
                f"${b} million. What is its current ratio?"
            )
            right = f"Current ratio is assets over liabilities: {a}/{b} = {a / b:.2f}."
            wrong = f"Current ratio is {a} - {b} = {a - b}."
        items.append((question, f"{right} Answer: see above", f"{wrong} Answer: see above"))
    return items


def sft_lines(count: int) -> list[dict[str, Any]]:
    return [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": right}]}
        for q, right, _ in finance_questions(count)
    ]


def preference_lines(count: int) -> list[dict[str, Any]]:
    return [
        {"prompt": q, "chosen": right, "rejected": wrong}
        for q, right, wrong in finance_questions(count)
    ]


# --- (b) TRL alone ------------------------------------------------------------------------------


def run_trl(method: str, model_path: Path, lines: list[dict[str, Any]], hp: dict[str, Any]) -> Run:
    """The job's data and trainer arguments straight on TRL, in this process, no callbacks."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.data import (
        JobData,
        instruction_from_sft_line,
        language_modeling_rows,
        preference_rows,
    )
    from training.trainers import build_trainer, common_arguments

    settings = Hyperparameters.model_validate(hp)  # as the trainer reads the job's row
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if method == "dpo":
        rows: list[dict[str, Any]] = preference_rows(
            lines, chat=tokenizer.chat_template is not None
        )
    else:
        rows = language_modeling_rows(  # type: ignore[assignment]
            tokenizer,
            method=method,
            data=JobData(instructions=[instruction_from_sft_line(line) for line in lines]),
            max_length=settings.max_length,
            cpt_ratio=settings.cpt_ratio,
            seed=settings.seed,
        ).rows
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    output_dir = Path(tempfile.mkdtemp(prefix=f"bench-trl-{method}-"))
    try:
        trainer = build_trainer(
            method=method,
            model=model,
            tokenizer=tokenizer,
            train_dataset=Dataset.from_list(rows),
            eval_dataset=None,
            arguments=common_arguments(settings, output_dir, has_eval=False),
            hp=settings,
            lora=None,
            callbacks=[],
        )
        # The service's trainer writes its progress to train.log; so does this one.
        with (
            (output_dir / "train.log").open("w") as log,
            contextlib.redirect_stdout(log),
            contextlib.redirect_stderr(log),
        ):
            output = trainer.train()
        wall = time.perf_counter() - started
        return Run(
            steps=trainer.state.global_step,
            train_seconds=output.metrics["train_runtime"],
            tokens=int(last_num_tokens(trainer.state.log_history)),
            wall_seconds=wall,
        )
    finally:
        shutil.rmtree(output_dir, ignore_errors=True)


def last_num_tokens(logs: list[dict[str, Any]]) -> float:
    """TRL's running count of the tokens trained on, as of the last logged step."""
    counts = [entry["num_tokens"] for entry in logs if "num_tokens" in entry]
    if not counts:
        raise RuntimeError("TRL logged no num_tokens: cannot count the tokens trained on")
    return float(counts[-1])


# --- (a) the service ----------------------------------------------------------------------------


def upload(client: httpx.Client, purpose: str, lines: list[dict[str, Any]]) -> str:
    body = "".join(json.dumps(line) + "\n" for line in lines).encode()
    response = client.post(
        "/v1/files",
        files={"file": (f"{purpose}.jsonl", body, "application/jsonl")},
        data={"purpose": purpose},
    )
    response.raise_for_status()
    return str(response.json()["id"])


def metrics_events(client: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"kind": "metrics", "limit": 1000}
    while True:
        page = client.get(f"/v1/training-jobs/{job_id}/events", params=params).json()
        found += page["data"]
        if not page["has_more"]:
            return found
        params["after"] = page["last_id"]


def run_service(
    client: httpx.Client, settings: Settings, request: dict[str, Any], hp: dict[str, Any]
) -> Run:
    """Create the job over the API and run a train worker until it is done; timed around it."""
    response = client.post("/v1/training-jobs", json=request)
    response.raise_for_status()
    created = response.json()
    if created["hyperparameters"] != hp:
        raise RuntimeError(
            f"the service stored other hyperparameters than TRL runs with: "
            f"{created['hyperparameters']} != {hp}"
        )
    started = time.perf_counter()
    run_train_worker(settings, burst=True)
    wall = time.perf_counter() - started
    job = client.get(f"/v1/training-jobs/{created['id']}").json()
    if job["status"] != "succeeded":
        raise RuntimeError(f"training job {job['id']} ended {job['status']}: {job['error']}")
    result = job["result"]
    return Run(
        steps=result["steps"],
        train_seconds=result["train_runtime"],
        tokens=int(last_num_tokens([e["metrics"] for e in metrics_events(client, job["id"])])),
        wall_seconds=wall,
        trainer_seconds=result["wall_seconds"],
    )


# --- the benchmark ------------------------------------------------------------------------------


def job_requests(
    files: dict[str, str], *, steps: int, sft_batch: int, dpo_batch: int
) -> dict[str, dict[str, Any]]:
    """The two jobs, with every hyperparameter that decides the speed pinned."""
    shared = {"max_steps": steps, "max_length": 256, "warmup_ratio": 0.0, "seed": 0}
    hyperparameters = {
        "sft": {**shared, "batch_size": sft_batch, "learning_rate": 1e-4, "packing": True},
        "dpo": {**shared, "batch_size": dpo_batch, "learning_rate": 1e-5},
    }
    return {
        method: {
            "method": method,
            "base_model": BENCH_MODEL,
            "data": {"files": [files[method]]},
            "hyperparameters": hyperparameters[method],
        }
        for method in METHODS
    }


def full_hyperparameters(request: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters as the service stores them (defaults filled in)."""
    return TrainingJobCreate.model_validate(request).resolved_hyperparameters()


def median_run(runs: list[Run]) -> tuple[float, float]:
    """Median steps/s and tokens/s."""
    return (
        statistics.median(run.steps_per_s for run in runs),
        statistics.median(run.tokens_per_s for run in runs),
    )


def seconds(values: Iterable[float]) -> str:
    return f"{statistics.median(values):.2f}"


def print_results(
    service: dict[str, list[Run]], trl: dict[str, list[Run]], title: str, repeats: int
) -> None:
    table = Table(title=f"{title}, median of {repeats}")
    for column in ("method", "run", "steps", "tokens", "train s", "steps/s", "tokens/s"):
        table.add_column(column, justify="right")
    for method in METHODS:
        for name, runs in (("service", service[method]), ("TRL alone", trl[method])):
            steps_per_s, tokens_per_s = median_run(runs)
            table.add_row(
                method,
                name,
                str(runs[0].steps),
                str(runs[0].tokens),
                f"{statistics.median(run.train_seconds for run in runs):.2f}",
                f"{steps_per_s:.3f}",
                f"{tokens_per_s:.0f}",
            )
    console.print(table)
    for method in METHODS:
        (s_steps, s_tokens), (t_steps, t_tokens) = (
            median_run(service[method]),
            median_run(trl[method]),
        )
        # Runs of one repeat ran back to back: their ratios show how much the machine drifted.
        pairs = zip(service[method], trl[method], strict=True)
        each = " ".join(f"{s.steps_per_s / t.steps_per_s:.3f}" for s, t in pairs)
        print(
            f"ratio service/TRL, {method} (steps/s): {s_steps / t_steps:.3f}"
            f"   (tokens/s): {s_tokens / t_tokens:.3f}   (each repeat, steps/s: {each})"
        )
        if {run.tokens for run in service[method]} != {run.tokens for run in trl[method]}:
            print(f"note: {method} trained on different token counts in the two runs")

    overhead = Table(title="service: seconds around the training loop (medians)")
    for column in ("method", "job wall", "train", "overhead", "start", "load+save", "TRL setup"):
        overhead.add_column(column, justify="right")
    for method in METHODS:
        runs = service[method]
        trainer = [run.trainer_seconds or 0.0 for run in runs]
        overhead.add_row(
            method,
            seconds(run.wall_seconds for run in runs),
            seconds(run.train_seconds for run in runs),
            seconds(run.wall_seconds - run.train_seconds for run in runs),
            seconds(r.wall_seconds - t for r, t in zip(runs, trainer, strict=True)),
            seconds(t - r.train_seconds for r, t in zip(runs, trainer, strict=True)),
            seconds(r.wall_seconds - r.train_seconds for r in trl[method]),
        )
    console.print(overhead)
    print(
        "overhead = job wall - train_runtime; start = the worker taking the job, the trainer "
        "process starting and importing; load+save = reading the job and its files, tokenizing, "
        "loading the model, building the trainer, saving the model; TRL setup = the same "
        "tokenizing, loading and building in this process, for scale."
    )
    for method in METHODS:
        wall = statistics.median(r.wall_seconds - r.train_seconds for r in service[method])
        print(f"service overhead, {method} (job wall - train_runtime): {wall:.2f} s")


def main(
    steps: Annotated[int, typer.Option(help="Optimizer steps per job.")] = 30,
    repeats: Annotated[int, typer.Option(help="Runs of each; the medians are reported.")] = 3,
    examples: Annotated[int, typer.Option(help="SFT examples and preference pairs.")] = 64,
    hidden_size: Annotated[int, typer.Option(help="Tiny model width (2 layers, 4 heads).")] = 256,
    smoke: Annotated[bool, typer.Option(help="The test model, 3 steps, 1 repeat (CI).")] = False,
    port: int = 8799,
    data_dir: Path = Path("data/bench"),
) -> None:
    from tests.tiny_model import build_tiny_model

    sft_batch, dpo_batch = 4, 4
    if smoke:
        steps, repeats, examples, hidden_size, sft_batch, dpo_batch = 3, 1, 16, 64, 2, 2
    lines = {"sft": sft_lines(examples), "dpo": preference_lines(examples)}
    load_before = os.getloadavg()[0]
    service: dict[str, list[Run]] = {method: [] for method in METHODS}
    trl: dict[str, list[Run]] = {method: [] for method in METHODS}
    folder = tempfile.mkdtemp(prefix="bench-model-")
    model_path = Path(folder) / "tiny"
    settings = get_settings().model_copy(
        update={
            "data_dir": data_dir,
            "files_dir": data_dir / "files",
            "training_dir": data_dir / "training",
            # Jobs name only models the operator offers: the tiny model, by name.
            "base_models": {**get_settings().base_models, BENCH_MODEL: str(model_path)},
        }
    )
    try:
        with (
            backing_services(settings, reclaim_running=False) as bound,
            api_in_thread(bound, "127.0.0.1", port) as url,
            httpx.Client(
                base_url=url,
                timeout=60,
                headers=bearer(issue_key(bound, project="benchmarks", name="training")),
            ) as client,
        ):
            build_tiny_model(
                model_path,
                hidden_size=hidden_size,
                intermediate_size=2 * hidden_size,
                num_attention_heads=4,
            )
            files = {
                "sft": upload(client, "sft", lines["sft"]),
                "dpo": upload(client, "preference", lines["dpo"]),
            }
            requests = job_requests(files, steps=steps, sft_batch=sft_batch, dpo_batch=dpo_batch)
            hp = {method: full_hyperparameters(requests[method]) for method in METHODS}
            for method in METHODS:  # warm-up: this process's lazy imports and first-step costs
                run_trl(method, model_path, lines[method], hp[method])
            for repeat in range(repeats):
                for method in METHODS:
                    # Alternate which goes first, so neither always runs on a cooler machine.
                    order = ("service", "trl") if repeat % 2 == 0 else ("trl", "service")
                    for which in order:
                        if which == "service":
                            service[method].append(
                                run_service(client, bound, requests[method], hp[method])
                            )
                        else:
                            run = run_trl(method, model_path, lines[method], hp[method])
                            trl[method].append(run)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    load_after = os.getloadavg()[0]
    print_results(
        service,
        trl,
        f"training speed, tiny Llama (hidden {hidden_size}), {examples} examples, {steps} steps",
        repeats,
    )
    # Both runs share the machine's cores with whatever else runs: a busy machine skews the ratio.
    print(f"load average (1 min) at start {load_before:.2f}, at end {load_after:.2f}")


if __name__ == "__main__":
    typer.run(main)
