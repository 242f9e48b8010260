"""The trainer process of one job: `python -m training.run JOB_ID` (or under `accelerate launch`).

The supervisor has already marked the job running; this process loads the data and the base
model, trains, saves the model and records the outcome. Under `accelerate launch` every process
runs this; only the main one writes to the database.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.kernel.catalog import resolve_model
from app.kernel.config import Settings, get_settings
from app.kernel.context import ProcessContext
from app.kernel.db.session import SessionFactory
from app.kernel.files import uploaded_file_path
from app.kernel.logs import configure_logging
from app.kernel.models import TrainingFile, TrainingJob
from app.kernel.models.statuses import RunStatus, TrainingMethod
from app.kernel.pairs_export import pair_rows
from app.kernel.training_schedule import optimizer_steps, schedule_problem
from training import job_store
from training.data import (
    JobData,
    instruction_from_pair,
    instruction_from_sft_line,
    language_modeling_rows,
    preference_rows,
    question_key,
    read_jsonl,
    split_by_group,
)
from training.reporting import JobReporter, ReportingCallback
from training.trainers import build_trainer, common_arguments, early_stopping_callbacks

log = logging.getLogger(__name__)

MODEL_FOLDER = "model"
"""The produced model lives in <job output_dir>/model."""


class PointlessJob(ValueError):
    """The job's settings would train nothing, or more than the service allows; the message
    names the field and the fix."""


def load_job_data(session_factory: SessionFactory, settings: Settings, job: TrainingJob) -> JobData:
    """Every file and dataset the job names, sorted by what it is used for."""
    data = JobData()
    with session_factory() as session:
        files = [session.get(TrainingFile, file_id) for file_id in job.data.get("files", [])]
    for file in files:
        if file is None:
            raise ValueError("a training file of this job was deleted before it started")
        lines = read_jsonl(uploaded_file_path(settings.files_dir, file.id))
        if file.purpose == "cpt":
            data.cpt_texts.extend(line["text"] for line in lines)
        elif file.purpose == "sft":
            data.instructions.extend(instruction_from_sft_line(line) for line in lines)
        else:
            data.preferences.extend(lines)
    for dataset_id in job.data.get("datasets", []):
        rows = pair_rows(session_factory, dataset_id=dataset_id)
        if job.method == TrainingMethod.DPO:
            data.preferences.extend(rows)
        else:
            data.instructions.extend(instruction_from_pair(row) for row in rows)
    return data


@dataclass
class TrainOutcome:
    cancelled: bool
    result: dict[str, Any]
    model_path: Path | None


def model_positions(base_path: str) -> int | None:
    """The longest sequence the base model was built for, where its config says."""
    from transformers import AutoConfig

    positions = getattr(AutoConfig.from_pretrained(base_path), "max_position_embeddings", None)
    return positions if isinstance(positions, int) and positions > 0 else None


def train_job(
    job: TrainingJob,
    base_path: str,
    data: JobData,
    reporter: JobReporter,
    output_dir: Path,
    *,
    max_training_steps: int,
) -> TrainOutcome:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    options = job.options
    hp = options.hyperparameters
    positions = model_positions(base_path)
    if positions is not None and hp.max_length > positions:
        # Longer sequences than the model has positions for only cost memory (packing fills them).
        reporter.event(
            "status",
            message=f"max_length {hp.max_length} cut to the base model's {positions} positions",
        )
        hp = hp.model_copy(update={"max_length": positions})
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    counts: dict[str, int]
    if options.method == TrainingMethod.DPO:
        rows: list[dict[str, Any]] = preference_rows(
            data.preferences, chat=tokenizer.chat_template is not None
        )
        groups = [question_key(row["prompt"]) for row in data.preferences]
        counts = {"preference_pairs": len(rows)}
    else:
        language_set = language_modeling_rows(
            tokenizer,
            method=options.method,
            data=data,
            max_length=hp.max_length,
            cpt_ratio=hp.cpt_ratio,
            seed=hp.seed,
        )
        rows, groups, counts = language_set.rows, language_set.groups, language_set.counts  # type: ignore[assignment]
    if not rows:
        raise ValueError(f"no training examples: the job's data holds nothing for {job.method}")
    train_rows, eval_rows = split_by_group(groups, eval_fraction=hp.eval_fraction, seed=hp.seed)
    if hp.early_stopping is not None and not eval_rows:
        raise PointlessJob(
            "hyperparameters.early_stopping: nothing to evaluate on: the eval split keeps each "
            "question (or CPT text) on one side, and this data holds only one; early stopping "
            "needs at least two"
        )
    dataset = Dataset.from_list([rows[i] for i in train_rows])
    eval_dataset = Dataset.from_list([rows[i] for i in eval_rows]) if eval_rows else None

    # float32 master weights: with bf16=True the trainer computes in bfloat16 under autocast;
    # bfloat16 weights would swallow updates as small as the paper's DPO lr (5e-7).
    dtype = torch.float32
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype)
    callback = ReportingCallback(reporter)
    has_eval = eval_dataset is not None
    trainer = build_trainer(
        method=options.method,
        model=model,
        tokenizer=tokenizer,
        train_dataset=dataset,
        eval_dataset=eval_dataset,
        arguments=common_arguments(hp, output_dir, has_eval=has_eval),
        hp=hp,
        lora=options.lora,
        callbacks=[callback, *early_stopping_callbacks(hp, has_eval=has_eval)],
    )
    steps = optimizer_steps(
        batches_per_epoch=len(trainer.get_train_dataloader()),
        gradient_accumulation=hp.gradient_accumulation,
        epochs=hp.epochs,
        max_steps=hp.max_steps,
    )
    problem = schedule_problem(
        steps,
        epochs=hp.epochs,
        max_steps=hp.max_steps,
        warmup_ratio=hp.warmup_ratio,
        lr_scheduler=hp.lr_scheduler,
        checkpoint_every=hp.checkpoint_every,
        max_training_steps=max_training_steps,
    )
    if problem is not None:
        raise PointlessJob(problem)
    reporter.event(
        "status",
        message=f"training on {len(dataset)} examples, {steps} optimizer steps",
        metrics={**counts, "total_steps": steps},
    )
    before = weights_fingerprint(trainer.model)
    trainer.train()
    after = weights_fingerprint(trainer.model)
    result: dict[str, Any] = {
        "steps": trainer.state.global_step,
        "examples": len(dataset),
        "eval_examples": 0 if eval_dataset is None else len(eval_dataset),
        **counts,
        **callback.summary,
    }
    if callback.last_loss is not None:
        result["last_loss"] = callback.last_loss
    if hp.early_stopping is not None:
        best = best_checkpoint_result(
            trainer.state, total_steps=steps, cancelled=callback.cancelled
        )
        result.update(best)
        if not callback.cancelled:
            reporter.event("status", step=best["best_step"], message=best_checkpoint_message(best))
    if before is not None and after is not None:
        result["weights_changed"] = before != after
    if callback.cancelled or result.get("weights_changed") is False:
        return TrainOutcome(cancelled=callback.cancelled, result=result, model_path=None)
    model_path = output_dir / MODEL_FOLDER
    if options.lora is None:
        trainer.save_model(str(model_path))  # gathers FSDP/DeepSpeed shards; main process writes
    else:
        adapter_path = output_dir / "adapter"
        trainer.save_model(str(adapter_path))
        if trainer.accelerator.is_main_process:
            merge_adapter(base_path, adapter_path, model_path, dtype=dtype)
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(model_path)
    return TrainOutcome(cancelled=False, result=result, model_path=model_path)


def best_checkpoint_result(state: Any, *, total_steps: int, cancelled: bool) -> dict[str, Any]:
    """Which checkpoint the trainer loaded as the best (lowest eval loss), and whether the run
    stopped before its last step."""
    best_step = None
    if state.best_model_checkpoint:
        best_step = int(Path(state.best_model_checkpoint).name.removeprefix("checkpoint-"))
    return {
        "best_step": best_step,
        "best_eval_loss": state.best_metric,
        "stopped_early": state.global_step < total_steps and not cancelled,
    }


def best_checkpoint_message(best: dict[str, Any]) -> str:
    stopped = (
        "stopped early: eval_loss stopped falling" if best["stopped_early"] else "ran to the end"
    )
    if best["best_step"] is None:
        return f"{stopped}; no evaluated checkpoint, the model is the last step's"
    return (
        f"{stopped}; the model is checkpoint-{best['best_step']} "
        f"(lowest eval_loss {best['best_eval_loss']:.4g})"
    )


FINGERPRINT_TENSORS = 8
FINGERPRINT_ELEMENTS = 1 << 20


def weights_fingerprint(model: Any) -> str | None:
    """A digest of a few trainable tensors spread over the model (the first million elements of
    each), enough to tell whether an optimizer step moved any weight; None where this process
    holds no weights to read (DeepSpeed ZeRO-3 partitions)."""
    import hashlib

    trainable = [param for param in model.parameters() if param.requires_grad]
    if not trainable:
        return None
    stride = max(len(trainable) // FINGERPRINT_TENSORS, 1)
    digest = hashlib.blake2b(digest_size=16)
    for param in trainable[::stride][:FINGERPRINT_TENSORS] + trainable[-1:]:
        tensor = param.full_tensor() if hasattr(param, "full_tensor") else param  # FSDP 2
        if tensor.numel() == 0:
            return None
        values = tensor.detach().reshape(-1)[:FINGERPRINT_ELEMENTS].float().cpu().numpy()
        digest.update(values.tobytes())
    return digest.hexdigest()


def merge_adapter(base_path: str, adapter_path: Path, model_path: Path, *, dtype: Any) -> None:
    """Fold a LoRA adapter into its base weights: the produced model is a plain HF folder that
    every engine (hf, vLLM) loads like any other."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype)
    PeftModel.from_pretrained(base, str(adapter_path)).merge_and_unload().save_pretrained(
        model_path
    )


def is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def run(job_id: str, settings: Settings) -> int:
    with ProcessContext.open(settings) as context:
        return run_in(context, job_id)


def run_in(context: ProcessContext, job_id: str) -> int:
    """Train the running job; only the main process of a distributed job writes its outcome."""
    settings, session_factory = context.settings, context.session_factory
    writes = is_main_process()
    with session_factory() as session:
        job = session.get(TrainingJob, job_id)
        if job is None or job.status != RunStatus.RUNNING or not job.output_dir:
            log.error("training job %s is not running; nothing to do", job_id)
            return 1
        session.expunge(job)
    started = time.monotonic()
    with JobReporter(context, job_id, writes=writes) as reporter:
        try:
            with session_factory() as session:
                base_path = resolve_model(
                    session, settings, job.base_model, project_id=job.project_id
                )
            outcome = train_job(
                job,
                base_path,
                load_job_data(session_factory, settings, job),
                reporter,
                Path(job.output_dir),
                max_training_steps=settings.max_training_steps,
            )
        except Exception as error:
            log.exception("training job %s failed", job_id)
            if writes:
                reporter.flush()
                job_store.finish_job(
                    context,
                    job_id,
                    RunStatus.FAILED,
                    error=(
                        str(error)
                        if isinstance(error, PointlessJob)
                        else f"{type(error).__name__}: {error}"
                    ),
                )
            return 1
    outcome.result["wall_seconds"] = round(time.monotonic() - started, 3)
    if not writes:
        return 0
    if outcome.cancelled:
        job_store.finish_job(context, job_id, RunStatus.CANCELLED, result=outcome.result)
    elif outcome.model_path is None:
        # Registering a model equal to its base would pass for a trained one.
        job_store.finish_job(
            context,
            job_id,
            RunStatus.FAILED,
            result=outcome.result,
            error=(
                f"no weight changed in {outcome.result['steps']} optimizer steps (learning rate "
                f"{job.options.hyperparameters.learning_rate:g}): the model equals its base, so "
                "none was registered; raise learning_rate or train longer"
            ),
        )
    else:
        job_store.finish_job(
            context,
            job_id,
            RunStatus.SUCCEEDED,
            result=outcome.result,
            model_path=str(outcome.model_path),
        )
    return 0


def main() -> None:
    configure_logging()
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m training.run JOB_ID")
    raise SystemExit(run(sys.argv[1], get_settings()))


if __name__ == "__main__":
    main()
