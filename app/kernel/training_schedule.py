"""How many optimizer steps a training job takes, and whether its learning-rate schedule leaves
every one of them at 0: one rule for the API (at creation) and the trainer (before it trains).

The counting follows transformers' Trainer (`set_initial_training_values`, `get_warmup_steps`).
"""

from __future__ import annotations

import math


def train_examples(examples: int, eval_fraction: float) -> int:
    """Examples left to train on after the eval split (datasets rounds the held-out share up)."""
    if eval_fraction > 0 and examples >= 2:
        return examples - math.ceil(examples * eval_fraction)
    return examples


def optimizer_steps(
    *, batches_per_epoch: int, gradient_accumulation: int, epochs: float, max_steps: int | None
) -> int:
    """Optimizer steps of a run: `max_steps` when set, else epochs × updates per epoch."""
    if max_steps:
        return max_steps
    per_epoch = max(math.ceil(batches_per_epoch / gradient_accumulation), 1)
    return math.ceil(epochs * per_epoch)


def zero_learning_rate_problem(steps: int, *, warmup_ratio: float, lr_scheduler: str) -> str | None:
    """What to change when every one of `steps` optimizer steps would run at learning rate 0.

    Warmup starts at 0 and rises from the second step on, and no decay reaches 0 before the last
    step ends, so only a single step that is all warmup trains at 0 (`constant` has no warmup).
    """
    if lr_scheduler == "constant" or warmup_ratio <= 0 or steps != 1:
        return None
    return (
        f"hyperparameters.warmup_ratio: with 1 optimizer step, {warmup_ratio * 100:g}% warmup "
        "leaves every step at learning rate 0; use more steps or warmup_ratio 0"
    )


def schedule_problem(
    steps: int,
    *,
    epochs: float,
    max_steps: int | None,
    warmup_ratio: float,
    lr_scheduler: str,
    checkpoint_every: int | None,
    max_training_steps: int,
) -> str | None:
    """What is wrong with a schedule of `steps` optimizer steps, or None: more steps than the
    service allows one job (max_steps, or epochs x the data's batches), checkpoints further apart
    than the whole run, or every step at learning rate 0."""
    if steps > max_training_steps:
        if max_steps:
            return (
                f"hyperparameters.max_steps: at most {max_training_steps} optimizer steps, "
                f"got {max_steps}"
            )
        return (
            f"hyperparameters.epochs: {epochs:g} epochs of this data make {steps} optimizer "
            f"steps, the limit is {max_training_steps}; lower epochs or raise batch_size"
        )
    if checkpoint_every is not None and checkpoint_every > steps:
        return (
            f"hyperparameters.checkpoint_every: at most the job's {steps} optimizer steps, got "
            f"{checkpoint_every} (leave it unset to save at each epoch's end)"
        )
    return zero_learning_rate_problem(steps, warmup_ratio=warmup_ratio, lr_scheduler=lr_scheduler)
