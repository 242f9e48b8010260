"""`findap train`: upload local training files, start a training job, follow its steps and loss."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.client.common import (
    IdempotencyKeyOption,
    IntervalOption,
    UrlOption,
    WaitOption,
    new_idempotency_key,
    open_connection,
    reports_errors,
    without_none,
)
from app.client.connection import Connection
from app.client.errors import ClientError, WorkEndedBadly
from app.client.job_evaluation import (
    before_after_table,
    evaluation_body,
    is_local,
    wait_for_after,
)
from app.client.output import job_table, out, show
from app.client.patient import patient
from app.client.progress import watch_training
from app.schemas.training_job import SchedulerName, StrategyName, TrainingMethod

PURPOSES = ("cpt", "sft", "preference", "eval")
PURPOSE_OF_METHOD = {"cpt": "cpt", "sft": "sft", "dpo": "preference"}
"""The purpose a local file gets when it has no `purpose:` prefix (cpt_sft takes two kinds)."""


def local_file(value: str, method: str) -> tuple[Path, str] | None:
    """(path, purpose) when `value` names a local file, `purpose:path` or a plain path."""
    purpose, _, rest = value.partition(":")
    if purpose in PURPOSES and rest and Path(rest).is_file():
        return Path(rest), purpose
    if not Path(value).is_file():
        return None
    if method not in PURPOSE_OF_METHOD:
        raise ClientError(
            f"--file {value}: method {method} takes cpt and sft files; "
            f"write cpt:{value} or sft:{value}"
        )
    return Path(value), PURPOSE_OF_METHOD[method]


def upload(connection: Connection, path: Path, purpose: str) -> str:
    """Upload a JSONL training file; its id."""
    with path.open("rb") as content:
        made = connection.post(
            "/v1/files",
            files={"file": (path.name, content, "application/jsonl")},
            data={"purpose": purpose},
        )
    out.print(f"uploaded {path} as {made['id']} ({made['lines']} lines, purpose {purpose})")
    return str(made["id"])


def file_ids(connection: Connection, values: list[str], method: str) -> list[str]:
    """Each --file as an id: ids as given, local files uploaded first."""
    ids = []
    for value in values:
        found = local_file(value, method)
        if found is not None:
            ids.append(upload(connection, *found))
        elif value.startswith("file_"):
            ids.append(value)
        else:
            raise ClientError(f"--file {value}: no such local file, and not a file_… id")
    return ids


@reports_errors
def train(
    method: Annotated[TrainingMethod, typer.Option(help="What to train.")],
    base_model: Annotated[
        str, typer.Option(help="A model from `findap models`, a folder or a hub id.")
    ],
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", help="A dataset id, ds_… (repeatable).")
    ] = None,
    file: Annotated[
        list[str] | None,
        typer.Option(
            "--file",
            help="A file id (file_…) or a local JSONL file to upload (repeatable); a local "
            "file's purpose follows the method, or write it first: cpt:texts.jsonl, "
            "sft:chat.jsonl, preference:pairs.jsonl.",
        ),
    ] = None,
    epochs: Annotated[float | None, typer.Option(help="Passes over the data.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Optimizer steps (beats epochs).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Per device per step.")] = None,
    gradient_accumulation: Annotated[int | None, typer.Option(help="Steps per update.")] = None,
    learning_rate: Annotated[
        float | None,
        typer.Option("--learning-rate", "--lr", help="Default 5e-7 for dpo, else 5e-6."),
    ] = None,
    warmup_ratio: Annotated[float | None, typer.Option(help="Share of steps warming up.")] = None,
    lr_scheduler: Annotated[
        SchedulerName | None, typer.Option(help="Learning rate schedule.")
    ] = None,
    weight_decay: Annotated[
        float | None, typer.Option(help="AdamW weight decay; default 0 for dpo, else 0.1.")
    ] = None,
    adam_beta1: Annotated[float | None, typer.Option(help="AdamW beta1; default 0.9.")] = None,
    adam_beta2: Annotated[
        float | None, typer.Option(help="AdamW beta2; default 0.999 for dpo, else 0.95.")
    ] = None,
    max_length: Annotated[int | None, typer.Option(help="Tokens per sequence.")] = None,
    seed: Annotated[int | None, typer.Option(help="Shuffling and initialisation.")] = None,
    eval_fraction: Annotated[float | None, typer.Option(help="Share held out.")] = None,
    checkpoint_every: Annotated[int | None, typer.Option(help="Steps between saves.")] = None,
    early_stopping: Annotated[
        int | None,
        typer.Option(
            metavar="PATIENCE",
            help="Stop after this many evaluations without a lower eval loss; the job's model "
            "is then the best checkpoint. Needs --eval-fraction.",
        ),
    ] = None,
    packing: Annotated[
        bool | None, typer.Option("--packing/--no-packing", help="cpt, sft, cpt_sft.")
    ] = None,
    cpt_ratio: Annotated[
        float | None, typer.Option(help="cpt_sft: CPT tokens per instruction token.")
    ] = None,
    beta: Annotated[float | None, typer.Option(help="dpo: KL strength.")] = None,
    nll_weight: Annotated[float | None, typer.Option(help="dpo: NLL term on chosen.")] = None,
    loss_type: Annotated[str | None, typer.Option(help="dpo: TRL's loss, e.g. sigmoid.")] = None,
    lora_r: Annotated[
        int | None, typer.Option(help="Train a LoRA adapter of this rank (merged after).")
    ] = None,
    lora_alpha: Annotated[int | None, typer.Option(help="LoRA alpha.")] = None,
    strategy: Annotated[StrategyName | None, typer.Option(help="Sharding over GPUs.")] = None,
    num_processes: Annotated[int | None, typer.Option(help="GPUs (default: all).")] = None,
    suffix: Annotated[str | None, typer.Option(help="Part of the produced model's id.")] = None,
    evaluation: Annotated[
        str | None,
        typer.Option(
            "--eval",
            help="Evaluate the base model and the trained one on these held-out questions: "
            "a local file (uploaded as purpose eval), an eval file id, or a dataset id.",
        ),
    ] = None,
    eval_mode: Annotated[str, typer.Option(help="cot or direct.")] = "cot",
    eval_judge: Annotated[
        str | None, typer.Option(help="The evaluation's judge model, e.g. rule.")
    ] = None,
    eval_samples: Annotated[int | None, typer.Option(help="Answers per question.")] = None,
    idempotency_key: IdempotencyKeyOption = None,
    wait: WaitOption = False,
    interval: IntervalOption = 2.0,
    url: UrlOption = None,
) -> None:
    """Start a training job (cpt, sft, cpt_sft, dpo); with --wait, follow steps and loss."""
    hyperparameters = without_none(
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        gradient_accumulation=gradient_accumulation,
        learning_rate=learning_rate,
        warmup_ratio=warmup_ratio,
        lr_scheduler=lr_scheduler,
        weight_decay=weight_decay,
        adam_beta1=adam_beta1,
        adam_beta2=adam_beta2,
        max_length=max_length,
        seed=seed,
        eval_fraction=eval_fraction,
        checkpoint_every=checkpoint_every,
        early_stopping=None if early_stopping is None else {"patience": early_stopping},
        packing=packing,
        cpt_ratio=cpt_ratio,
        beta=beta,
        nll_weight=nll_weight,
        loss_type=loss_type,
    )
    lora = without_none(r=lora_r, alpha=lora_alpha) or None
    distributed = without_none(strategy=strategy, num_processes=num_processes) or None
    key = new_idempotency_key(idempotency_key)
    with open_connection(url) as connection:
        if evaluation is not None and is_local(evaluation):
            evaluation = upload(connection, Path(evaluation), "eval")
        body = without_none(
            method=method,
            base_model=base_model,
            data={
                "datasets": dataset or [],
                "files": file_ids(connection, file or [], method),
            },
            hyperparameters=hyperparameters,
            lora=lora,
            distributed=distributed,
            suffix=suffix,
            evaluation=evaluation
            and evaluation_body(evaluation, mode=eval_mode, judge=eval_judge, samples=eval_samples),
        )
        job = connection.post_idempotent("/v1/training-jobs", key, lambda: {"json": body}).json()
        out.print(
            f"started {job['id']}: {job['method']} on {job['base_model']} -> {job['output_model']}"
        )
        if wait:
            finish_training(connection, job["id"], interval_s=interval)


def finish_training(connection: Connection, job_id: str, *, interval_s: float) -> None:
    """Follow the job to its end, then show it; a failed or cancelled end is an error."""
    job = watch_training(patient(connection), job_id, interval_s=interval_s, console=out)
    show(job_table(job))
    if job["status"] != "succeeded":
        reason = f": {job['error']}" if job["error"] else ""
        raise WorkEndedBadly(f"training job {job_id} {job['status']}{reason}")
    out.print(
        f"model {job['output_model']} is ready: `findap submit … --policy {job['output_model']}`"
    )
    if job.get("evaluation"):
        out.print("evaluating the trained model …")
        job = wait_for_after(patient(connection), job, interval_s=interval_s)
        show(before_after_table(job["evaluation"]))
