"""TRL trainers for a job's method and hyperparameters: SFTTrainer for cpt/sft/cpt_sft, DPOTrainer
for dpo (DPO plus an NLL term on chosen, as `loss_type=[<loss>, "sft"]`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.kernel.models.statuses import TrainingMethod
from app.kernel.training_options import Hyperparameters, LoraOptions


def on_gpu(use_cpu: bool = False) -> bool:
    import torch

    return torch.cuda.is_available() and not use_cpu


def common_arguments(
    hp: Hyperparameters, output_dir: Path, *, has_eval: bool, use_cpu: bool = False
) -> dict[str, Any]:
    """TrainingArguments shared by every method: schedule, batch, seed, logging, checkpoints."""
    gpu = on_gpu(use_cpu)
    checkpoint_every = hp.checkpoint_every
    arguments: dict[str, Any] = {
        "output_dir": str(output_dir),
        "num_train_epochs": hp.epochs,
        "max_steps": hp.max_steps or -1,
        "per_device_train_batch_size": hp.batch_size,
        "per_device_eval_batch_size": hp.batch_size,
        "gradient_accumulation_steps": hp.gradient_accumulation,
        "learning_rate": hp.learning_rate,
        "warmup_steps": hp.warmup_ratio,  # transformers 5: a float below 1 is a ratio
        "lr_scheduler_type": hp.lr_scheduler,
        "weight_decay": hp.weight_decay or 0.0,
        "adam_beta1": hp.adam_beta1,
        "adam_beta2": 0.999 if hp.adam_beta2 is None else hp.adam_beta2,
        "seed": hp.seed,
        "data_seed": hp.seed,
        "max_length": hp.max_length,
        "logging_steps": 1,
        "save_strategy": "steps" if checkpoint_every else "epoch",
        "report_to": "none",
        "use_cpu": not gpu,
        "bf16": gpu,
        "dataloader_num_workers": 0,
    }
    if checkpoint_every:
        arguments["save_steps"] = checkpoint_every
    arguments["save_total_limit"] = hp.save_total_limit
    if has_eval:
        arguments["eval_strategy"] = "steps" if checkpoint_every else "epoch"
        if checkpoint_every:
            arguments["eval_steps"] = checkpoint_every
        # Evaluated at each save: the checkpoint with the lowest eval loss outlives rotation.
        arguments["metric_for_best_model"] = "eval_loss"
        arguments["greater_is_better"] = False
        if hp.early_stopping is not None:
            # The job's model is then the checkpoint with the lowest eval loss.
            arguments["load_best_model_at_end"] = True
    return arguments


def early_stopping_callbacks(hp: Hyperparameters, *, has_eval: bool) -> list[Any]:
    """transformers' EarlyStoppingCallback when the job asks for it and has an eval split."""
    if hp.early_stopping is None or not has_eval:
        return []
    from transformers import EarlyStoppingCallback

    return [
        EarlyStoppingCallback(
            early_stopping_patience=hp.early_stopping.patience,
            early_stopping_threshold=hp.early_stopping.min_delta,
        )
    ]


def lora_config(lora: LoraOptions | None) -> Any:
    if lora is None:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )


def dpo_losses(hp: Hyperparameters) -> dict[str, Any]:
    """The preference loss, plus the NLL term on chosen answers when its weight is above 0."""
    loss_types, weights = [hp.loss_type], [1.0]
    if hp.nll_weight > 0 and hp.loss_type != "sft":
        loss_types.append("sft")
        weights.append(hp.nll_weight)
    return {"beta": hp.beta, "loss_type": loss_types, "loss_weights": weights}


def build_trainer(
    *,
    method: str,
    model: Any,
    tokenizer: Any,
    train_dataset: Any,
    eval_dataset: Any,
    arguments: dict[str, Any],
    hp: Hyperparameters,
    lora: LoraOptions | None,
    callbacks: list[Any],
) -> Any:
    peft_config = lora_config(lora)
    if method == TrainingMethod.DPO:
        from trl import DPOConfig, DPOTrainer

        return DPOTrainer(
            model=model,
            args=DPOConfig(**arguments, **dpo_losses(hp)),
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=callbacks,
        )
    from trl import SFTConfig, SFTTrainer

    packing = bool(hp.packing)
    return SFTTrainer(
        model=model,
        # Pre-tokenized input_ids + labels; bfd packing is padding-free: position ids restart at
        # each example, so attention stays within it.
        args=SFTConfig(**arguments, packing=packing, packing_strategy="bfd"),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
    )
