"""A training job's settings, as the API validated them and as the trainer reads them back from
the job's row."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from app.kernel.batch_options import StrictModel
from app.kernel.models.statuses import TrainingMethod

SchedulerName = Literal["linear", "cosine", "constant", "constant_with_warmup"]
StrategyName = Literal["ddp", "fsdp", "deepspeed"]

DEFAULT_LEARNING_RATES: dict[TrainingMethod, float] = {
    TrainingMethod.CPT: 2e-5,
    TrainingMethod.SFT: 2e-5,
    TrainingMethod.CPT_SFT: 2e-5,
    TrainingMethod.DPO: 5e-7,  # the paper's DPO setting
}

DPO_ONLY = ("beta", "nll_weight", "loss_type")
LM_ONLY = ("packing", "cpt_ratio")
"""Settings of the language-modelling methods (cpt, sft, cpt_sft), refused for dpo."""

DPOLossType = Literal[
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
]


class Hyperparameters(StrictModel):
    epochs: float = Field(default=1.0, gt=0, le=1000)
    max_steps: int | None = Field(
        default=None, ge=1, description="Stop after this many optimizer steps (overrides epochs)."
    )
    batch_size: int = Field(
        default=8,
        ge=1,
        le=4096,
        description="Per device: examples, or packed max_length sequences when packing.",
    )
    gradient_accumulation: int = Field(default=1, ge=1, le=1024)
    learning_rate: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Default by method: 5e-7 for dpo (the paper), 2e-5 otherwise.",
    )
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    lr_scheduler: SchedulerName = "linear"
    weight_decay: float = Field(default=0.0, ge=0, le=1)
    max_length: int = Field(default=2048, ge=16, le=1_048_576, description="Tokens per sequence.")
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    eval_fraction: float = Field(
        default=0.0, ge=0, le=0.5, description="Share of examples held out for evaluation."
    )
    checkpoint_every: int | None = Field(
        default=None,
        ge=1,
        description="Save a checkpoint every N steps (default: each epoch); at most the job's "
        "optimizer steps.",
    )
    save_total_limit: int = Field(
        default=2,
        ge=1,
        le=100,
        description="Checkpoints kept on disk: the newest ones, and with an eval split the best "
        "(lowest eval_loss) among them; older ones are deleted as new ones are saved.",
    )
    packing: bool = Field(
        default=True,
        description="cpt, sft, cpt_sft: pack examples into max_length sequences; attention "
        "stays within each example.",
    )
    cpt_ratio: float = Field(
        default=1.0,
        gt=0,
        le=100,
        description="cpt_sft: CPT texts per instruction example after downsampling (1.0 = 1:1).",
    )
    beta: float = Field(default=0.1, gt=0, le=100, description="dpo: KL strength.")
    nll_weight: float = Field(
        default=1.0, ge=0, le=100, description="dpo: weight of the NLL term on chosen; 0 = off."
    )
    loss_type: DPOLossType = Field(default="sigmoid", description="dpo: TRL preference loss.")


class LoraOptions(StrictModel):
    r: int = Field(default=16, ge=1, le=1024)
    alpha: int = Field(default=32, ge=1, le=4096)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


class DistributedOptions(StrictModel):
    strategy: StrategyName = Field(
        default="ddp", description="How `accelerate launch` shards the job over GPUs."
    )
    num_processes: int | None = Field(
        default=None, ge=1, le=1024, description="Processes (GPUs); default: every visible GPU."
    )


class TrainingSettings(StrictModel):
    """What the trainer needs of a job, read back from its row."""

    method: TrainingMethod
    hyperparameters: Hyperparameters
    lora: LoraOptions | None = None
    distributed: DistributedOptions | None = None

    @classmethod
    def of_row(
        cls,
        method: str,
        hyperparameters: dict[str, Any],
        lora: dict[str, Any] | None,
        distributed: dict[str, Any] | None,
    ) -> TrainingSettings:
        return cls.model_validate(
            {
                "method": method,
                "hyperparameters": hyperparameters,
                "lora": lora,
                "distributed": distributed,
            }
        )
